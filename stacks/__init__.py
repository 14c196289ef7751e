"""Jinja2 templates and defaults for each service, shipped in the wheel.

One folder per service (``victoria-metrics/``, ``collector/``, ...). Templates are rendered by
:meth:`legible.services.PlanContext.render` with ``StrictUndefined``, so a missing variable is an error, not
an empty string. Values must go through ``tojson`` where they land in YAML or JSON.
"""

from pathlib import Path

#: The directory holding the templates.
TEMPLATES = Path(__file__).parent
