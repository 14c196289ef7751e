"""Compact an accessibility snapshot for a model: fewer lines, refs only where an agent can act.

Input is Playwright's AI-mode ARIA snapshot (``locator.aria_snapshot(mode="ai")``, the YAML form described
at https://playwright.dev/python/docs/aria-snapshots), one node per line::

    - generic [active] [ref=f5e1]:
      - paragraph [ref=f5e17]:
        - generic [ref=f5e18]: Name
        - textbox "Name" [ref=f5e19]
      - link "Orders" [ref=f5e13] [cursor=pointer]:
        - /url: /orders

Output keeps the same YAML shape with these rewrites (pure text, so it is unit-tested without a browser):

* unnamed structural wrappers (``generic``, ``paragraph``, ``list``, ``listitem``, ``strong``, ...) are
  dropped and their children move up one level; a wrapper holding only text becomes ``- text: ...``;
* a ``text`` that only repeats the name of the next control (its label) is dropped;
* ``[ref=...]`` is kept only on roles an agent can act on (links, buttons, fields, ...) and shortened
  from Playwright's ``f5e19`` to ``e19`` (the frame prefix is returned so the ref resolves again);
* ``[cursor=pointer]`` is dropped and a link's ``/url`` child is inlined as ``[url=/orders]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Roles whose nodes keep a ref (an agent clicks, fills or reads them).
ACTIONABLE = frozenset(
    {
        "link",
        "button",
        "textbox",
        "searchbox",
        "combobox",
        "listbox",
        "checkbox",
        "radio",
        "switch",
        "slider",
        "spinbutton",
        "menuitem",
        "menuitemcheckbox",
        "menuitemradio",
        "tab",
        "treeitem",
        "dialog",
        "alert",
        "alertdialog",
        "status",
    }
)
#: Roles dropped when they have no name (their children move up).
WRAPPERS = frozenset(
    {
        "generic",
        "paragraph",
        "list",
        "listitem",
        "strong",
        "emphasis",
        "group",
        "none",
        "presentation",
        "section",
        "Section",
        "superscript",
        "subscript",
        "code",
        "time",
        "term",
        "definition",
        "blockquote",
        "caption",
        "rowgroup",
    }
)
_LINE = re.compile(r"^(?P<indent> *)- (?P<body>.*)$")
_HEAD = re.compile(
    r'^(?P<role>[A-Za-z/][\w/-]*)(?: (?P<name>"(?:[^"\\]|\\.)*"))?(?P<attrs>(?: \[[^\]]*\])*)(?P<rest>.*)$'
)
_ATTR = re.compile(r"\[([^\]]*)\]")
_REF = re.compile(r"^(?P<prefix>(?:f\d+)?)e(?P<n>\d+)$")


@dataclass
class Node:
    """One parsed line of the snapshot.

    Attributes:
        role: ARIA role, ``text``, or a property key such as ``/url``.
        name: accessible name without quotes, or ``""``.
        attrs: bracketed attributes in order (``level=1``, ``checked``, ``ref=f5e19``...).
        value: the text after ``:`` on the same line, or ``""``.
        children: child nodes.

    """

    role: str
    name: str = ""
    attrs: list[str] = field(default_factory=list)
    value: str = ""
    children: list[Node] = field(default_factory=list)
    quoted_name: str = ""

    @property
    def ref(self) -> str:
        """The ``ref=`` attribute's value, or ``""``."""
        for a in self.attrs:
            if a.startswith("ref="):
                return a[4:]
        return ""


def parse(text: str) -> list[Node]:
    """Parse snapshot YAML into a forest of :class:`Node` (lines that are not ``- ...`` attach as values)."""
    roots: list[Node] = []
    stack: list[tuple[int, Node]] = []
    for raw in text.splitlines():
        m = _LINE.match(raw)
        if not m:
            if stack and raw.strip():
                stack[-1][1].value = (stack[-1][1].value + " " + raw.strip()).strip()
            continue
        indent = len(m["indent"])
        node = _parse_body(m["body"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        (stack[-1][1].children if stack else roots).append(node)
        stack.append((indent, node))
    return roots


def _parse_body(body: str) -> Node:
    if body.startswith("/") and ":" in body:  # a property such as "/url: /orders"
        key, _, val = body.partition(":")
        return Node(role=key, value=val.strip())
    if body.startswith("text:") or body.startswith('text "'):
        return Node(role="text", value=body[5:].strip())
    h = _HEAD.match(body)
    if not h:
        return Node(role="text", value=body)
    rest = h["rest"]
    value = ""
    if rest.startswith(":"):
        value = rest[1:].strip()
    quoted = h["name"] or ""
    name = quoted[1:-1].replace('\\"', '"') if quoted else ""
    return Node(role=h["role"], name=name, attrs=_ATTR.findall(h["attrs"] or ""), value=value, quoted_name=quoted)


def compact(text: str) -> tuple[str, str, int]:
    """Rewrite a Playwright AI snapshot as described in the module docstring.

    Args:
        text: the YAML returned by ``aria_snapshot(mode="ai")``.

    Returns:
        ``(yaml, frame_prefix, refs)``: the compact YAML (ends with a newline, ``""`` for an empty page),
        the ref prefix that was stripped (``"f5"``, or ``""``) and the number of refs kept.

    """
    forest = parse(text)
    prefix = ""
    for node in _walk(forest):
        m = _REF.match(node.ref)
        if m:
            prefix = m["prefix"]
            break
    out: list[str] = []
    refs = [0]
    for node in _simplify(forest):
        _render(node, 0, prefix, out, refs)
    return ("\n".join(out) + "\n") if out else "", prefix, refs[0]


def _walk(nodes: list[Node]) -> list[Node]:
    out: list[Node] = []
    for n in nodes:
        out.append(n)
        out.extend(_walk(n.children))
    return out


def _simplify(nodes: list[Node]) -> list[Node]:
    out: list[Node] = []
    for n in nodes:
        n.children = _simplify(n.children)
        if n.role in WRAPPERS and not n.name:
            if n.value and not n.children:
                out.append(Node(role="text", value=n.value))
            else:
                if n.value:
                    out.append(Node(role="text", value=n.value))
                out.extend(n.children)
            continue
        out.append(n)
    # drop a text that is the label of the control right after it
    kept: list[Node] = []
    for i, n in enumerate(out):
        nxt = out[i + 1] if i + 1 < len(out) else None
        if n.role == "text" and nxt is not None and nxt.name and _unquote(n.value) == nxt.name:
            continue
        kept.append(n)
    return kept


def _unquote(v: str) -> str:
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        return v[1:-1]
    return v


def _render(node: Node, depth: int, prefix: str, out: list[str], refs: list[int]) -> None:
    pad = "  " * depth
    if node.role == "text":
        out.append(f"{pad}- text: {node.value}")
        return
    if node.role.startswith("/"):
        out.append(f"{pad}- {node.role}: {node.value}")
        return
    parts = [node.role]
    if node.quoted_name:
        parts.append(node.quoted_name)
    children = list(node.children)
    url = next((c for c in children if c.role == "/url"), None)
    if url is not None and node.role == "link":
        children.remove(url)
    for a in node.attrs:
        if a == "cursor=pointer" or a == "active":
            continue
        if a.startswith("ref="):
            if node.role not in ACTIONABLE:
                continue
            m = _REF.match(a[4:])
            short = f"e{m['n']}" if m and m["prefix"] == prefix else a[4:]
            refs[0] += 1
            parts.append(f"[ref={short}]")
            continue
        parts.append(f"[{a}]")
    if url is not None and node.role == "link":
        parts.append(f"[url={url.value}]")
    head = " ".join(parts)
    if children:
        out.append(f"{pad}- {head}:" + (f" {node.value}" if node.value else ""))
        for c in children:
            _render(c, depth + 1, prefix, out, refs)
    elif node.value:
        out.append(f"{pad}- {head}: {node.value}")
    else:
        out.append(f"{pad}- {head}")


def resolve_ref(ref: str, prefix: str) -> str | None:
    """Turn a ref the agent typed (``e19``, ``@e19``, ``ref=e19``, ``f5e19``) into Playwright's ``aria-ref`` value.

    Returns:
        ``"f5e19"``-style ref, or ``None`` when ``ref`` does not look like a ref (then it is a selector).

    """
    r = ref.strip().removeprefix("@").removeprefix("ref=").removeprefix("aria-ref=")
    m = _REF.match(r)
    if not m:
        return None
    return r if m["prefix"] else f"{prefix}e{m['n']}"
