"""``legible browser diff``: what changed on the page, as text and as pixels.

* :func:`snapshot_diff` compares two accessibility snapshots (the agent's ``snapshots/*.yaml``) line by line
  with :class:`difflib.SequenceMatcher` (Python's standard library): a replaced line that still resembles
  the line it replaces (similarity ratio at least :data:`SIMILAR`) is *changed*, others *added* or
  *removed*, so a new page reads as lines gone and lines come, not as unrelated pairs. Refs (``[ref=e19]``)
  are left out of the comparison, since they are renumbered
  between snapshots.
* :func:`image_diff` compares a screenshot with a reference image with pixelmatch (the Python port of
  mapbox's pixelmatch, https://github.com/whtsky/pixelmatch-py), writes the diff image (changed pixels in
  red over a faded copy) and returns the changed fraction.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from legible._errors import PrerequisiteMissing, UsageError

if TYPE_CHECKING:
    from legible.contract import VisualDiffDoc

__all__ = ["ImageDiff", "SnapshotDiff", "image_diff", "previous_snapshot", "snapshot_diff"]

_REF = re.compile(r" \[ref=[a-z]*\d+\]")
#: :meth:`difflib.SequenceMatcher.ratio` from which a replaced line counts as the same line changed.
SIMILAR = 0.6


@dataclass
class SnapshotDiff:
    """Line changes between two snapshots.

    Attributes:
        changed: ``(before, after)`` pairs of lines replaced one for one.
        added: lines only in the current snapshot.
        removed: lines only in the previous one.

    """

    changed: list[tuple[str, str]] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``{"changed": [{"before", "after"}...], "added": [...], "removed": [...]}``."""
        return {
            "changed": [{"before": b, "after": a} for b, a in self.changed],
            "added": self.added,
            "removed": self.removed,
        }


def _lines(text: str) -> list[str]:
    return [_REF.sub("", ln).rstrip() for ln in text.splitlines() if ln.strip()]


def snapshot_diff(before: str, after: str) -> SnapshotDiff:
    """Compare two snapshot texts line by line (refs ignored); see the module docstring."""
    a, b = _lines(before), _lines(after)
    res = SnapshotDiff()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "replace":
            pairs = min(i2 - i1, j2 - j1)
            for k in range(pairs):
                old, new = a[i1 + k].strip(), b[j1 + k].strip()
                if difflib.SequenceMatcher(a=old, b=new, autojunk=False).ratio() >= SIMILAR:
                    res.changed.append((old, new))
                else:
                    res.removed.append(old)
                    res.added.append(new)
            res.removed += [ln.strip() for ln in a[i1 + pairs : i2]]
            res.added += [ln.strip() for ln in b[j1 + pairs : j2]]
        elif tag == "delete":
            res.removed += [ln.strip() for ln in a[i1:i2]]
        elif tag == "insert":
            res.added += [ln.strip() for ln in b[j1:j2]]
    return res


def previous_snapshot(snapshots: Path, current: Path) -> Path | None:
    """The newest snapshot file in ``snapshots`` taken before ``current`` (names sort by time), or ``None``."""
    older = sorted(p for p in snapshots.glob("*.yaml") if p.name < current.name)
    return older[-1] if older else None


@dataclass
class ImageDiff:
    """A pixel comparison.

    Attributes:
        changed: pixels that differ beyond the threshold (anti-aliasing ignored).
        total: pixels compared (width x height).
        diff_path: the diff image (PNG).
        size: ``(width, height)`` in pixels.

    """

    changed: int
    total: int
    diff_path: Path
    size: tuple[int, int]

    @property
    def fraction(self) -> float:
        """Changed pixels over all pixels, 0..1."""
        return self.changed / self.total if self.total else 0.0


def image_diff(reference: Path, current: Path, out: Path, threshold: float = 0.1) -> ImageDiff:
    """Compare ``current`` with ``reference`` pixel by pixel and write the diff image to ``out``.

    Args:
        reference: the expected image (PNG or JPEG).
        current: the new screenshot, the same size.
        out: where the diff PNG goes (its folder is created).
        threshold: pixelmatch's per-pixel colour threshold, 0..1 (smaller is stricter).

    Raises:
        UsageError: a file cannot be read as an image, or the sizes differ.
        PrerequisiteMissing: pixelmatch or Pillow is not installed.

    """
    try:
        from PIL import Image, UnidentifiedImageError
        from pixelmatch.contrib.PIL import pixelmatch
    except ImportError:
        raise PrerequisiteMissing(
            "pixelmatch (and Pillow) are needed for screenshot diffs", hint="pip install 'legible[browser]'"
        ) from None
    try:
        ref = Image.open(reference).convert("RGBA")
        cur = Image.open(current).convert("RGBA")
    except (OSError, UnidentifiedImageError) as e:
        raise UsageError(f"cannot read an image: {e}", hint="pass a PNG or JPEG screenshot as the reference") from None
    if ref.size != cur.size:
        raise UsageError(
            f"the reference is {ref.size[0]}x{ref.size[1]}, the screenshot {cur.size[0]}x{cur.size[1]}",
            hint="take the reference with `legible browser screenshot --png` at the same viewport",
        )
    diff = Image.new("RGBA", ref.size)
    changed = pixelmatch(ref, cur, diff, threshold=threshold)
    out.parent.mkdir(parents=True, exist_ok=True)
    diff.save(out)
    return ImageDiff(changed, ref.size[0] * ref.size[1], out, ref.size)


#: The end-state screenshot of each journey in a proof bundle: ``journeys/<name>/END_STATE``.
END_STATE = "end-state.png"


def capture_end_state(state_dir: Path, bundle: Path, journey: str) -> Path | None:
    """Screenshot the tab as a journey left it (PNG) into ``bundle/journeys/<journey>/end-state.png``.

    Returns:
        The file, or ``None`` when the browser could not take it (the proof then has no visual diff for it).

    """
    import shutil

    from legible.browser.client import call

    try:
        shot = call(state_dir, "screenshot", {"png": True, "name": f"{journey}-end-state"}, timeout=30)
    except Exception:  # noqa: BLE001 - evidence is best effort; the journey's verdict is already recorded
        return None
    dest = bundle / "journeys" / journey / END_STATE
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(shot["path"], dest)
    return dest


def visual_diffs(bundle: Path, baseline: Path, journeys: list[str]) -> list[VisualDiffDoc]:
    """Each journey's end state against the baseline bundle's, for ``legible proof --baseline``.

    Args:
        bundle: this run's bundle (with ``journeys/<name>/end-state.png``).
        baseline: the baseline run's bundle directory.
        journeys: the journey names to compare.

    Returns:
        ``[{"journey", "changed_fraction" (0..1) or None, "diff" (bundle-relative path) or None, "note"}]``:
        ``note`` says why there is no figure (no end state in one of the runs, a different size).

    """
    out: list[VisualDiffDoc] = []
    for name in journeys:
        cur, ref = bundle / "journeys" / name / END_STATE, baseline / "journeys" / name / END_STATE
        row: VisualDiffDoc = {"journey": name, "changed_fraction": None, "diff": None, "note": ""}
        if not cur.is_file() or not ref.is_file():
            row["note"] = "no end-state screenshot in " + ("this run" if not cur.is_file() else "the baseline")
        else:
            try:
                d = image_diff(ref, cur, bundle / "journeys" / name / "end-state-diff.png")
            except (UsageError, PrerequisiteMissing) as e:
                row["note"] = e.message
            else:
                row["changed_fraction"] = round(d.fraction, 6)
                row["diff"] = str(d.diff_path.relative_to(bundle))
        out.append(row)
    return out


def render_visual(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines for the proof summary: one row per journey, the changed fraction and the diff image."""
    if not rows:
        return []
    lines = ["### End state vs baseline", "", "| journey | pixels changed | diff |", "|---|---|---|"]
    for r in rows:
        frac = "-" if r["changed_fraction"] is None else f"{r['changed_fraction']:.2%}"
        diff = f"![{r['journey']} diff]({r['diff']})" if r["diff"] else r["note"]
        lines.append(f"| {r['journey']} | {frac} | {diff} |")
    return [*lines, ""]
