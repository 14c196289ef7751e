"""HTTP clients for legible's own loopback calls: they never go through a proxy.

``urllib.request.urlopen`` and ``requests`` honour ``http_proxy``/``HTTP_PROXY``; with a proxy set for the
outside world and no ``NO_PROXY`` covering 127.0.0.1, every call to the stack's collector or
VictoriaMetrics would go to the proxy and fail. legible only ever talks to 127.0.0.1, so its clients
ignore proxy settings: urllib through an opener with an empty ``ProxyHandler`` (Python docs,
``urllib.request.ProxyHandler``: "To disable autodetected proxy pass an empty dictionary"), requests
through a ``Session`` with ``trust_env = False``. ``http.client`` never reads proxy variables.
"""

from __future__ import annotations

import urllib.request
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

__all__ = ["requests_session", "urlopen"]


@cache
def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def urlopen(req: str | urllib.request.Request, timeout: float) -> Any:
    """``urllib.request.urlopen`` without proxies; same return value and errors (``OSError`` subclasses).

    Raises:
        urllib.error.HTTPError: the server answered 4xx/5xx.
        urllib.error.URLError: the connection failed.

    """
    return _opener().open(req, timeout=timeout)


def requests_session() -> requests.Session:
    """A ``requests.Session`` that ignores proxy variables and ``.netrc`` (``trust_env = False``)."""
    import requests

    session = requests.Session()
    session.trust_env = False
    return session
