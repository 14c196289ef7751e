"""Generate ``legible/schemas/<name>.v1.json`` from the types of :mod:`legible.contract` (run at dev time).

    .venv/bin/python scripts/gen_schemas.py          # rewrite the shipped schemas
    .venv/bin/python scripts/gen_schemas.py --check  # exit 1 if a shipped schema differs (CI, tests)

Each schema is pydantic's ``TypeAdapter(T).json_schema()`` (JSON Schema draft 2020-12) of the contract's
``TypedDict``, with every object closed (``additionalProperties: false``: a key the type does not name is a
contract change, not noise), plus ``$schema``, ``$id`` (``urn:legible:<name>:v1``) and ``title``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from legible.schemas import generate, schema_dir  # noqa: E402


def main(argv: list[str]) -> int:
    """Write (or with ``--check`` compare) every schema; return the exit code."""
    check = "--check" in argv
    stale = []
    for fname, text in generate().items():
        path = schema_dir() / fname
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(fname)
        else:
            path.write_text(text)
    known = set(generate())
    extra = sorted(p.name for p in schema_dir().glob("*.json") if p.name not in known)
    if check and (stale or extra):
        print(f"stale schemas: {', '.join(stale + extra)}; run scripts/gen_schemas.py", file=sys.stderr)
        return 1
    if not check:
        for name in extra:
            (schema_dir() / name).unlink()
        print(f"wrote {len(known)} schemas to {schema_dir()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
