"""HTTP clients for legible's own loopback calls: they never go through a proxy.

``urllib.request.urlopen`` and ``requests`` honour ``http_proxy``/``HTTP_PROXY``; with a proxy set for the
outside world and no ``NO_PROXY`` covering 127.0.0.1, every call to the stack's collector or
VictoriaMetrics would go to the proxy and fail. legible only ever talks to 127.0.0.1, so its clients
ignore proxy settings: urllib through an opener with an empty ``ProxyHandler`` (Python docs,
``urllib.request.ProxyHandler``: "To disable autodetected proxy pass an empty dictionary"), requests
through a ``Session`` with ``trust_env = False``. ``http.client`` never reads proxy variables:
:func:`request` uses it alone (importing ``urllib.request`` costs about 5 ms more, paid by every query
command that asks the collector).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import urllib.request

    import requests

__all__ = ["request", "requests_session", "urlopen"]


@cache
def _opener() -> urllib.request.OpenerDirector:
    import urllib.request

    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(
    method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float
) -> tuple[int, bytes]:
    """Send one HTTP/1.1 request to a loopback ``http://`` URL with ``http.client``; return its answer.

    Args:
        method: ``GET``, ``POST``...
        url: ``http://127.0.0.1:PORT/path[?query]``.
        body: the request body (``Content-Length`` is set from it), or ``None``.
        headers: extra request headers.
        timeout: seconds, for connecting and for each read.

    Returns:
        ``(status, body)``: any status, 4xx and 5xx included (no exception for them), and the whole body.

    Raises:
        OSError: the connection failed, timed out, or the answer was not HTTP (``http.client``'s protocol
            errors are raised as ``ConnectionError``).

    """
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise ValueError(f"not an http:// URL: {url!r}")
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        conn.request(method, (u.path or "/") + (f"?{u.query}" if u.query else ""), body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except http.client.HTTPException as e:
        raise ConnectionError(f"{url}: {e!r}") from e
    finally:
        conn.close()


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
