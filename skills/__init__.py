"""Agent Skills (``<name>/SKILL.md``) that teach coding agents the legible CLIs; shipped in the wheel.

Format: the Agent Skills specification (front matter ``name`` matching the folder, ``description`` under
1024 characters; body under 500 lines). ``legible skills install`` copies them where agents look.
"""

from pathlib import Path

#: The directory holding one folder per skill.
SKILLS_DIR = Path(__file__).parent
