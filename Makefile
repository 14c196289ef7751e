# The README's commands. `make demo` and `make test` each set up a fresh Debian machine first.
.PHONY: setup demo test lint bench clean

setup:
	./scripts/setup.sh

demo: setup
	./scripts/demo.sh

test: setup
	PATH="$(CURDIR)/.venv/bin:$$PATH" .venv/bin/python -m pytest -q -p no:cacheprovider

# ruff (lint and format) on every Python folder, mypy strict on legible/ and clis/ (pyproject.toml).
LINT_DIRS = legible clis stacks skills tests benchmarks examples scripts
lint: setup
	.venv/bin/ruff check $(LINT_DIRS)
	.venv/bin/ruff format --check $(LINT_DIRS)
	.venv/bin/mypy

bench: setup
	.venv/bin/python benchmarks/run.py

clean:
	-.venv/bin/legible down --purge
	rm -rf .venv build *.egg-info
