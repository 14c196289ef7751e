"""JSON Schemas of legible's ``--json`` documents, shipped in the package.

``check.v1.json`` (``legible check --json``, ``checks.json``) and ``proof.v1.json`` (``legible proof --json``,
``manifest.json``), JSON Schema draft 2020-12 (https://json-schema.org/draft/2020-12). Validate with the
``jsonschema`` package: ``jsonschema.validate(doc, load("proof"), registry=registry())``.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

NAMES = ("check", "proof")


def load(name: str) -> dict[str, Any]:
    """Return the schema ``name`` (``"check"`` or ``"proof"``) as a dict.

    Raises:
        ValueError: an unknown name.
    """
    if name not in NAMES:
        raise ValueError(f"unknown schema {name!r}; known: {', '.join(NAMES)}")
    doc: dict[str, Any] = json.loads(resources.files(__name__).joinpath(f"{name}.v1.json").read_text())
    return doc


def registry() -> Any:
    """A ``referencing.Registry`` holding every schema by its ``$id`` (``urn:legible:<name>:v1``)."""
    from referencing import Registry, Resource

    return Registry().with_resources((load(n)["$id"], Resource.from_contents(load(n))) for n in NAMES)
