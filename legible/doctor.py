"""``legible doctor``: find each external component, its version, and the command that installs it.

Installation (``--install``) uses Debian's packages: ``apt-get install`` when running as root, otherwise
``apt-get download`` plus ``dpkg-deb -x`` into legible's tool cache (no root needed); binaries in the
cache are found by the service kinds (see :func:`legible.services.victoria_metrics.find_binary`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final

from legible._errors import PrerequisiteMissing
from legible._paths import tool_cache
from legible.services import BUILTIN
from legible.services.base import Component
from legible.services.databases import DB_KINDS

if TYPE_CHECKING:
    from legible.contract import DoctorDoc

DOCTOR_SCHEMA: Final = "legible.doctor/v1"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
BACKEND_PREFIX = 'backend = "docker": '


def _version(path: str, flag: str = "--version") -> str:
    try:
        out = subprocess.run([path, flag], capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else ""


def _binary(name: str, names: tuple[str, ...], install: str, required: bool, flag: str = "--version") -> Component:
    for n in names:
        found = shutil.which(n)
        if found:
            return Component(name, Path(found), _version(found, flag), install, required)
    return Component(name, None, "", install, required)


def _python_package(name: str, module: str, install: str) -> Component:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return Component(name, None, "", install, False)
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version(name)
    except PackageNotFoundError:
        ver = ""
    return Component(name, Path(spec.origin).parent, ver, install, False)


def components() -> list[Component]:
    """Every component legible uses, required ones first."""
    out = [kind.detect() for kind in BUILTIN]
    out += [kind.detect() for kind in DB_KINDS.values()]  # postgres, redis: for [services.*] kind
    out.append(_binary("git", ("git",), "apt-get install git", True))
    if not any(c.name == "chromium" for c in out):  # the chromium service kind reports it when registered
        out.append(_binary("chromium", CHROMIUM_NAMES, "apt-get install chromium", False))
    out.append(_python_package("playwright", "playwright", "pip install 'legible[browser]'"))
    out.append(_python_package("imageio-ffmpeg", "imageio_ffmpeg", "pip install 'legible[browser]'"))
    out.append(
        _binary(
            "opentelemetry-instrument",
            ("opentelemetry-instrument",),
            "pip install opentelemetry-distro opentelemetry-exporter-otlp && opentelemetry-bootstrap -a install",
            False,
        )
    )
    out.append(_docker())
    return out


def _docker() -> Component:
    """Docker for ``[stack] backend = "docker"``: found only when an engine answers (the CLI alone is not enough)."""
    from legible.docker_backend import INSTALL, engine

    found = _binary("docker", ("docker",), INSTALL, False)
    if importlib.util.find_spec("docker") is None:
        return Component("docker", None, "", "optional, backend = \"docker\": pip install 'legible[docker]'", False)
    try:
        version = engine()
    except PrerequisiteMissing as e:
        where = f"the docker CLI is at {found.path} but " if found.path else ""
        return Component(
            "docker",
            None,
            "",
            f'optional, backend = "docker": {where}{e.message.removeprefix(BACKEND_PREFIX)}; {INSTALL}',
            False,
        )
    return Component("docker", found.path, f"engine {version}", INSTALL, False)


def check() -> DoctorDoc:
    """Check every component.

    Returns:
        ``legible.doctor/v1``: ``{"schema", "components": [{"name", "path", "version", "install",
        "required"}], "missing_required": [name...]}``.
    """
    comps = components()
    return {
        "schema": DOCTOR_SCHEMA,
        "components": [
            {
                "name": c.name,
                "path": str(c.path) if c.path else None,
                "version": c.version,
                "install": c.install,
                "required": c.required,
            }
            for c in comps
        ],
        "missing_required": [c.name for c in comps if c.required and c.path is None],
    }


def install_missing(user: bool = False) -> list[str]:
    """Install missing Debian components (victoria-metrics, chromium, postgresql, redis-server); say what was done.

    PostgreSQL and Redis (the ``kind = "postgres"``/``"redis"`` services) are installed with ``apt-get``
    only (as root); without root they are reported as a line saying the command to run, and no error.

    Args:
        user: never use ``apt-get install``, even as root: unpack into the tool cache (what a user without
            root gets; Chromium, which needs its shared libraries installed, is then only reported).

    Raises:
        PrerequisiteMissing: apt is not available, or the download or install failed.

    """
    done: list[str] = []
    comps = {c.name: c for c in components()}
    for name, package in (("victoria-metrics", "victoria-metrics"), ("chromium", "chromium")):
        if comps[name].path is not None:
            continue
        as_root = os.geteuid() == 0 and not user
        done.append(_install_deb(package, unpack_ok=name == "victoria-metrics", root=as_root))
    for name, package in (("postgres", "postgresql"), ("redis", "redis-server")):
        if comps[name].path is not None:
            continue
        if os.geteuid() != 0 or user:
            done.append(f"{package}: not installed (needs root: sudo apt-get install {package})")
            continue
        done.append(_install_deb(package, unpack_ok=False, root=True))
    return done


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, env=env, check=False)


def _install_deb(package: str, *, unpack_ok: bool, root: bool) -> str:
    if shutil.which("apt-get") is None:
        raise PrerequisiteMissing(
            f"cannot install {package}: apt-get is not available", hint=f"install {package} by hand"
        )
    if root:
        res = _apt("install", "-y", "-q", package)
        if res.returncode != 0:
            _apt("update", "-q")
            res = _apt("install", "-y", "-q", package)
        if res.returncode != 0:
            raise PrerequisiteMissing(
                f"apt-get install {package} failed: {res.stderr.strip().splitlines()[-1:]}",
                hint=f"run `apt-get update && apt-get install {package}` and read its output",
            )
        return f"apt-get install {package}"
    if not unpack_ok:
        raise PrerequisiteMissing(f"{package} needs root to install", hint=f"run: sudo apt-get install {package}")
    dest = tool_cache() / package
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103 - as root, apt downloads as its sandbox user _apt, which must write here
        res = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True, check=False)
        debs = list(Path(tmp).glob("*.deb"))
        if res.returncode != 0 or not debs:
            raise PrerequisiteMissing(
                f"apt-get download {package} failed: {res.stderr.strip()[-200:]}",
                hint=f"run: sudo apt-get install {package}",
            )
        dest.mkdir(parents=True, exist_ok=True)
        unpack = subprocess.run(
            ["dpkg-deb", "-x", str(debs[0]), str(dest)], capture_output=True, text=True, check=False
        )
        if unpack.returncode != 0:
            raise PrerequisiteMissing(
                f"dpkg-deb -x {debs[0].name} failed: {unpack.stderr.strip()[-200:]}",
                hint=f"run: sudo apt-get install {package}",
            )
    return f"unpacked {package} into {dest}"
