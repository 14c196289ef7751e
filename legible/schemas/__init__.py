"""JSON Schemas of every legible document, generated from :mod:`legible.contract` and shipped in the package.

One file per schema name: ``legible.<command>[-<subcommand>]/v1`` is ``<command>[-<subcommand>].v1.json``
(``legible.metrics-list/v1`` -> ``metrics-list.v1.json``), JSON Schema draft 2020-12
(https://json-schema.org/draft/2020-12), ``$id`` ``urn:legible:<name>:v1``. ``scripts/gen_schemas.py``
writes them from the contract's types (:func:`generate`); a test fails when a shipped file differs from
what the types produce now. Validate with the ``jsonschema`` package::

    jsonschema.validate(doc, load(doc["schema"]))
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["file_name", "generate", "load", "names", "registry", "schema_dir"]

_NAME = re.compile(r"^legible\.([a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*)/(v[0-9]+)$")


def file_name(name: str) -> str:
    """The file of schema ``name``: ``legible.metrics-list/v1`` (or ``metrics-list``) -> ``metrics-list.v1.json``.

    Raises:
        ValueError: ``name`` does not follow ``legible.<command>[-<subcommand>]/v<N>``.

    """
    if _NAME.match(name) is None and re.fullmatch(r"[a-z][a-z0-9-]*", name):
        name = f"legible.{name}/v1"
    m = _NAME.match(name)
    if m is None:
        raise ValueError(f"{name!r} is not a schema name (legible.<command>[-<subcommand>]/v1)")
    return f"{m.group(1)}.{m.group(2)}.json"


def schema_dir() -> Path:
    """The folder holding the shipped ``*.json`` schemas."""
    return Path(str(resources.files(__name__)))


def names() -> list[str]:
    """Every schema name with a shipped file, sorted (``["legible.check/v1", ...]``)."""
    out = []
    for p in sorted(schema_dir().glob("*.v*.json")):
        base, version, _ = p.name.rsplit(".", 2)
        out.append(f"legible.{base}/{version}")
    return out


def load(name: str) -> dict[str, Any]:
    """Return the shipped schema of ``name`` (``"legible.check/v1"``, or its short form ``"check"``).

    Raises:
        ValueError: not a schema name, or no schema is shipped for it.

    """
    path = schema_dir() / file_name(name)
    if not path.is_file():
        raise ValueError(f"no schema {name!r}; known: {', '.join(names())}")
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def registry() -> Any:
    """A ``referencing.Registry`` holding every shipped schema by its ``$id`` (``urn:legible:<name>:v1``)."""
    from referencing import Registry, Resource

    docs = [load(n) for n in names()]
    return Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs)


# -- generation (dev time, and the test that shipped files do not drift) ----------------------------------------
def generate() -> dict[str, str]:
    """Render every schema of :data:`legible.contract.SCHEMAS` from its type: ``{file name: JSON text}``.

    Uses pydantic's ``TypeAdapter(T).json_schema()``. Pydantic reads typed dicts only from
    ``typing_extensions`` on Python < 3.12 while the contract uses :mod:`typing` (free to import), so each
    type is first rebuilt as a ``typing_extensions.TypedDict`` with the same fields.
    """
    from pydantic import TypeAdapter

    from legible.contract.documents import SCHEMAS

    conv = _Converter()
    out = {}
    for name, tp in SCHEMAS.items():
        schema = TypeAdapter(conv.type(tp)).json_schema(mode="serialization")
        _close(schema)
        m = _NAME.match(name)
        assert m is not None, name
        doc = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"urn:legible:{m.group(1)}:{m.group(2)}",
            "title": name,
            **{k: v for k, v in schema.items() if k != "title"},
        }
        out[file_name(name)] = json.dumps(doc, indent=1, sort_keys=False) + "\n"
    return out


def _close(node: Any) -> None:
    """Close every object schema that lists ``properties`` (``additionalProperties: false``)."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            _close(v)
    elif isinstance(node, list):
        for v in node:
            _close(v)


class _Converter:
    """Rebuilds :mod:`typing` ``TypedDict`` types (recursively) as ``typing_extensions`` ones for pydantic."""

    def __init__(self) -> None:
        import sys
        import types

        self.module = types.ModuleType("legible_contract_for_pydantic")
        sys.modules[self.module.__name__] = self.module
        self.done: dict[Any, Any] = {}

    def type(self, tp: Any) -> Any:
        import functools
        import operator
        import types
        import typing

        import typing_extensions as te

        if typing.is_typeddict(tp):
            return self.typeddict(tp)
        if isinstance(tp, typing.ForwardRef):
            return tp.__forward_arg__  # a name resolved in self.module, where every rebuilt type lives
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is None or not args or origin is typing.Literal:
            return tp
        if origin is typing.Annotated:
            return typing.Annotated[(self.type(args[0]), *tp.__metadata__)]
        if origin in (typing.Union, types.UnionType):
            return functools.reduce(operator.or_, [self.type(a) for a in args])
        if origin in (typing.NotRequired, te.NotRequired):
            return te.NotRequired[self.type(args[0])]
        return origin[tuple(self.type(a) for a in args)] if len(args) > 1 else origin[self.type(args[0])]

    def typeddict(self, tp: Any) -> Any:
        import typing

        import typing_extensions as te

        name = tp.__name__
        if name in self.done:
            return self.done[name]
        self.done[name] = name  # a recursive reference while building: the name, resolved later
        hints = typing.get_type_hints(tp, include_extras=True)
        fields = {}
        for key, hint in hints.items():
            optional = typing.get_origin(hint) is typing.NotRequired  # not __required_keys__: see the contract
            if typing.get_origin(hint) in (typing.NotRequired, typing.Required):
                hint = typing.get_args(hint)[0]
            hint = self.type(hint)
            fields[key] = te.NotRequired[hint] if optional else hint
        new = te.TypedDict(name, fields)  # type: ignore[misc]  # built from another type at runtime
        new.__module__ = self.module.__name__
        new.__doc__ = tp.__doc__
        setattr(self.module, name, new)
        self.done[name] = new
        return new
