"""The ``docker`` backend: ``[stack] backend = "docker"`` runs services from images, where an engine answers.

:func:`containerize` turns a native :class:`~legible.plan.StackPlan` into one whose image-backed services
(:data:`IMAGES`: the official VictoriaMetrics, vmagent, Grafana and Vector images, and the app's
``[app] image`` or its command in :data:`DEFAULT_APP_IMAGE`) run as ``docker run`` under the same supervisor:
same lease and ports, same readiness probes, their output in the same ``.legible/logs/<service>.log``, and
``down`` stops them like any process (``docker run --init --rm`` forwards SIGTERM and removes the
container). The collector and the browser agent are legible itself and stay native. Pure data, tested
everywhere; :func:`engine` (the ``docker`` SDK, PyPI) checks the engine before ``up`` and
:func:`remove_containers` removes what a killed supervisor left (label ``legible.stack=<key>``).

Ports: each container uses the host network (``--network host``, Linux) and every service binds
``127.0.0.1:<leased port>`` itself, exactly as natively: a published port (``-p``) would reach the
container's bridge address, where the services' loopback addresses (probes, scrapes, OTLP) cannot go, so
nothing is published and nothing listens beyond loopback. Environment: only the plan's keys are passed,
by name (``--env NAME``: docker reads the value from the supervisor's environment), so no value is on a
command line; the inherited environment stays outside the container. Files: the worktree is mounted at
its own path (configs, data, logs keep their paths) and containers run as the calling user.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Final

from legible._errors import PrerequisiteMissing

if TYPE_CHECKING:
    from legible.plan import StackPlan
    from legible.services.base import ServicePlan

#: Image of each service kind (its entrypoint is the binary; the plan's flags become the command).
IMAGES: Final[dict[str, str]] = {
    "victoria-metrics": "victoriametrics/victoria-metrics:v1.79.5",  # the Debian version legible is tested with
    "vmagent": "victoriametrics/vmagent:v1.79.5",
    "grafana": "grafana/grafana-oss:11.6.0",
    "vector": "timberio/vector:0.46.1-debian",
}
#: Image the app's (and extra services') command runs in when ``[app] image`` is not set.
DEFAULT_APP_IMAGE: Final = "python:3.11-slim"
#: Docker Engine API version the SDK speaks (Engine 20.10 and later answer it).
API_VERSION: Final = "1.41"
#: Label that marks every container of a stack.
STACK_LABEL: Final = "legible.stack"
INSTALL: Final = "install Docker Engine (https://docs.docker.com/engine/install/debian/) and let this user reach it"


def container_name(key: str, service: str) -> str:
    """``legible-<key>-<service>``: one container per service of a stack."""
    return f"legible-{key}-{service}"


def _command(sp: ServicePlan) -> list[str]:
    if sp.name == "grafana":
        return []  # the image's entrypoint runs `grafana server` with the GF_* environment
    return list(sp.argv[1:])  # the binary is the image's entrypoint; the flags stay


def docker_argv(
    key: str, worktree: str, sp: ServicePlan, image: str, command: list[str], uid: int, gid: int
) -> list[str]:
    """The ``docker run`` argv that runs ``sp`` from ``image`` (see the module docstring)."""
    argv = [
        "docker",
        "run",
        "--rm",
        "--init",
        "--name",
        container_name(key, sp.name),
        "--network",
        "host",
        "--user",
        f"{uid}:{gid}",
        "--label",
        f"{STACK_LABEL}={key}",
        "--label",
        f"legible.service={sp.name}",
        "--volume",
        f"{worktree}:{worktree}",
        "--workdir",
        sp.cwd,
    ]
    for name in sorted(sp.env):
        argv += ["--env", name]
    return [*argv, image, *command]


def image_of(argv: list[str]) -> str:
    """The image of a :func:`docker_argv` command line."""
    i = argv.index("--workdir") + 2
    while argv[i] == "--env":
        i += 2
    return argv[i]


def containerize(plan: StackPlan, images: dict[str, str], uid: int | None = None, gid: int | None = None) -> StackPlan:
    """Return ``plan`` with its image-backed services turned into ``docker run`` (pure).

    Args:
        plan: the native plan.
        images: user service name to image (``[app] image``, ``[services.X] image``); the others use
            :data:`DEFAULT_APP_IMAGE` with their command.
        uid: user id inside the containers (default: the caller's).
        gid: group id (default: the caller's).

    """
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    services = []
    for sp in plan.services:
        if sp.name in IMAGES:
            image, command = IMAGES[sp.name], _command(sp)
        elif sp.role == "app":
            image, command = images.get(sp.name, DEFAULT_APP_IMAGE), list(sp.argv)
        else:  # the collector and the browser agent are legible itself: native
            services.append(sp)
            continue
        argv = docker_argv(plan.key, plan.worktree, sp, image, command, uid, gid)
        deferred = [d for d in sp.deferred if d != "argv"] + (["argv"] if "argv" in sp.deferred else [])
        services.append(dataclasses.replace(sp, argv=argv, deferred=deferred, stop_timeout=max(sp.stop_timeout, 10.0)))
    return dataclasses.replace(plan, services=services)


def engine() -> str:
    """Ask the Docker engine for its version through the ``docker`` SDK; return it.

    Raises:
        PrerequisiteMissing: the SDK is not installed or no engine answers (the reason is in the message).

    """
    try:
        import docker
    except ImportError:
        raise PrerequisiteMissing(
            'backend = "docker" needs the docker SDK', hint="pip install 'legible[docker]'"
        ) from None
    from docker.utils import kwargs_from_env

    base = str(kwargs_from_env().get("base_url") or "unix:///var/run/docker.sock")
    if base.startswith(("unix://", "http+unix://")) and not os.path.exists(base.split("://", 1)[1]):
        # checked here: the SDK leaks its socket when the connection to a missing one fails
        raise PrerequisiteMissing(f'backend = "docker": no Docker engine answers (no socket {base})', hint=INSTALL)
    client = None
    try:
        # a fixed API version: "auto" asks the engine inside the constructor and leaks its socket on failure
        client = docker.from_env(version=API_VERSION, timeout=5)
        version = str(client.version().get("Version", ""))
    except Exception as e:  # noqa: BLE001 - docker.errors.DockerException and socket errors: the reason is shown
        raise PrerequisiteMissing(
            f'backend = "docker": no Docker engine answers ({type(e).__name__}: {str(e)[:160]})', hint=INSTALL
        ) from None
    finally:
        if client is not None:
            client.close()
    return version


def pull(plan: StackPlan) -> list[str]:
    """Pull the images ``plan`` runs that are not present yet; return them.

    Raises:
        PrerequisiteMissing: an image cannot be pulled.

    """
    import docker

    client = docker.from_env(version=API_VERSION, timeout=300)
    pulled = []
    try:
        for sp in plan.services:
            if sp.argv[:2] != ["docker", "run"]:
                continue
            image = image_of(sp.argv)
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                try:
                    client.images.pull(image)
                except docker.errors.APIError as e:
                    raise PrerequisiteMissing(f"cannot pull {image}: {e}", hint=f"docker pull {image}") from None
                pulled.append(image)
    finally:
        client.close()
    return pulled


def remove_containers(key: str) -> list[str]:
    """Remove every container labelled ``legible.stack=<key>`` (left by a killed supervisor); return names."""
    try:
        import docker

        client = docker.from_env(version=API_VERSION, timeout=10)
    except Exception:  # noqa: BLE001 - no SDK or no engine: nothing of ours can be running there
        return []
    try:
        gone = []
        for c in client.containers.list(all=True, filters={"label": f"{STACK_LABEL}={key}"}):
            c.remove(force=True)
            gone.append(c.name)
        return gone
    finally:
        client.close()
