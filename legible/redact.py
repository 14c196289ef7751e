"""Redaction of secrets in what legible writes for others to read (proof bundles, video chapter text).

Two kinds of secret are found:

* **known values**: the values of environment variables whose NAMES say they are secret (see
  :data:`SECRET_ENV_NAMES`), and the password part of URL-valued variables (``DATABASE_URL`` with
  ``user:pass@``). Each value is replaced wherever it appears, and so is its *folded* form (the store's log
  templates fold numbers to ``<n>``, hex to ``<hex>``, see :func:`legible._template.fold` and ``docs/store.md``), so
  ``Geheim-2024`` is also caught as ``Geheim-<n>``;
* **shapes**: ``Authorization:``/``Bearer`` credentials, ``key=value`` / ``key: value`` / JSON
  ``"key": "value"`` pairs whose key looks secret (``password``, ``token``, ``api_key``, ``secret``...),
  credentials in URLs (``https://user:pass@host``) and in their query (``?token=...``), and well-known token
  shapes (GitHub, GitLab, Stripe, Slack, AWS access key ids, Google API keys, JWTs, PEM private keys).

Redaction works on *values*, never on serialized JSON: :meth:`Redactor.doc` walks dicts and lists and
redacts each string (keys included), and a string under a secret-looking key is replaced whole. So the
output is always as well-formed as the input, and redaction cannot crash on what it is given.

Not secret, on purpose: ``PWD``, ``OLDPWD``, ``HOME``, ``USER``, ``GIT_AUTHOR_NAME``, ``SSH_AUTH_SOCK``,
``XDG_*``, paths in general: a proof must still say which worktree it is about.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from legible._template import fold

__all__ = ["REDACTED", "SECRET_ENV_NAMES", "Redactor", "fold", "is_secret_name", "secret_values"]

REDACTED = "[REDACTED]"

#: Environment variable NAMES (shell patterns over the upper-cased name) whose values are secret.
#: ``*_URL``/``*_DSN`` values are not secret as a whole; their ``user:password@`` part is (see
#: :func:`secret_values`).
SECRET_ENV_NAMES = (
    "*PASSWORD*",
    "*PASSWD*",
    "*_PWD",
    "*SECRET*",
    "*TOKEN*",
    "*API_KEY*",
    "*APIKEY*",
    "*ACCESS_KEY*",
    "*PRIVATE_KEY*",
    "*CREDENTIAL*",
    "*SESSION_KEY*",
    "*COOKIE*",
)
#: Names that never count as secret, even when a pattern above matches.
NOT_SECRET_NAMES = frozenset({"PWD", "OLDPWD", "HOME", "USER", "LOGNAME", "SSH_AUTH_SOCK"})
#: Shortest value redacted as a known value: replacing ``"1"`` everywhere would wreck the text, protect nothing.
MIN_SECRET_LEN = 6

# Keys whose value is secret, in text (``password=...``) and in structured data (``{"api_key": ...}``).
_KEY = (
    r"[\w.-]*(?:passw(?:or)?d|passwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|"
    r"credential|session[_-]?id|cookie|client[_-]?secret)[\w.-]*|[\w.-]+_pwd"
)
_SECRET_KEY = re.compile(rf"(?i)^(?:{_KEY}|(?:proxy-)?authorization|x-api-key)$")
_QUOTED = r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"
_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # PEM private keys, whole
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
        REDACTED,
    ),
    # Authorization / Proxy-Authorization: keep the header name and the scheme, drop the credential
    (
        re.compile(
            r"(?i)((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|digest)\s+)?)"
            r"[^\s\"',;]+"
        ),
        r"\1" + REDACTED,
    ),
    # a bare "Bearer <credential>"
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{6,}"), r"\1" + REDACTED),
    # key=value, key: value, "key": "value" (JSON), key='value', ?key=value& with a secret-looking key
    (
        re.compile(
            rf"(?i)((?<![\w.-])[\"']?(?:{_KEY})[\"']?\s*[:=]\s*)(?!\[REDACTED\])"
            rf"(?:(?P<q>{_QUOTED})|[\"']?[^\s\"',;&}}\]]+)"
        ),
        lambda m: m[1] + (m["q"][0] + REDACTED + m["q"][0] if m["q"] else REDACTED),
    ),
    # credentials in URLs: scheme://user:password@host
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)"), r"\1" + REDACTED),
]
_TOKEN_SHAPES = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|sk-[A-Za-z0-9_-]{20,}|"
    r"(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|"
    r"AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{36}|"
    r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})\b"
)
_PLACEHOLDER = re.compile(r"<uuid>|<hex>|<n>|\"<s>\"")


def is_secret_name(name: str) -> bool:
    """Whether an environment variable NAME holds a secret (:data:`SECRET_ENV_NAMES`, not :data:`NOT_SECRET_NAMES`)."""
    upper = name.upper()
    if upper in NOT_SECRET_NAMES or upper.startswith("XDG_") or upper.startswith("GIT_"):
        return False
    return any(fnmatch.fnmatchcase(upper, pat) for pat in SECRET_ENV_NAMES)


def secret_values(env: Mapping[str, str]) -> list[str]:
    """The secret values of ``env``: values of secret names, and passwords inside URL values; longest first.

    Args:
        env: an environment (name -> value).

    Returns:
        Distinct values at least :data:`MIN_SECRET_LEN` characters long.

    """
    found: set[str] = set()
    for name, value in env.items():
        if not isinstance(value, str):
            continue
        if is_secret_name(name):
            found.add(value)
        if "://" in value and "@" in value:
            for part in value.split():
                try:
                    password = urlsplit(part).password
                except ValueError:
                    password = None
                if password:
                    found.add(password)
    return sorted((v for v in found if len(v) >= MIN_SECRET_LEN), key=len, reverse=True)


class Redactor:
    """Replaces secrets with ``[REDACTED]`` in strings and in structured data (see the module docstring).

    Args:
        secrets: known secret values (e.g. :func:`secret_values` of the stack's environment).

    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LEN}
        for s in list(values):
            folded = fold(s)
            # A folded form that is mostly placeholders ("<n>") would match innocent text: keep it only when
            # enough of the secret survives folding.
            if folded != s and len(_PLACEHOLDER.sub("", folded)) >= MIN_SECRET_LEN:
                values.add(folded)
        self.values = sorted(values, key=len, reverse=True)

    def text(self, text: str) -> str:
        """Return ``text`` with known values, then secret shapes, replaced by ``[REDACTED]``."""
        if not text:
            return text
        for value in self.values:
            if value in text:
                text = text.replace(value, REDACTED)
        for pat, repl in _PATTERNS:
            text = pat.sub(repl, text)
        return _TOKEN_SHAPES.sub(REDACTED, text)

    def doc(self, doc: Any) -> Any:
        """Return a copy of ``doc`` (JSON-like: dicts, lists, strings, numbers) with every string redacted.

        Dict keys are redacted as text; a string value under a secret-looking key (``password``,
        ``authorization``, ``api_key``...) becomes ``[REDACTED]`` whole. Other values (numbers, ``None``,
        booleans) are returned as they are; objects of other types are redacted as ``str(obj)``.
        """
        if isinstance(doc, str):
            return self.text(doc)
        if isinstance(doc, dict):
            out: dict[Any, Any] = {}
            for k, v in doc.items():
                key = self.text(k) if isinstance(k, str) else k
                if isinstance(k, str) and isinstance(v, str) and v and _SECRET_KEY.match(k):
                    out[key] = REDACTED
                else:
                    out[key] = self.doc(v)
            return out
        if isinstance(doc, (list, tuple)):
            return [self.doc(v) for v in doc]
        if doc is None or isinstance(doc, (bool, int, float)):
            return doc
        return self.text(str(doc))
