"""The ``legible`` command line: thin typer modules, one per command group.

Each module parses options, calls the core (:mod:`legible`), and renders with :mod:`clis._output`.
Heavy libraries are imported inside commands so ``legible status`` starts fast.
"""
