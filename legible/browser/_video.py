"""Walkthrough video: screencast frames to an H.264 MP4 with chapters, a poster image and a short GIF.

Frames come from CDP ``Page.startScreencast`` (JPEG files with the compositor timestamp of each,
https://chromedevtools.github.io/devtools-protocol/tot/Page/#method-startScreencast): Chromium sends a frame
only when the page repaints, so each frame is held until the next one (ffmpeg's concat demuxer with a
``duration`` per file, https://ffmpeg.org/ffmpeg-formats.html#concat-1); the MP4 keeps those durations
(variable frame rate), the GIF is resampled to 5 fps. Chapters go into the MP4 as ffmetadata
chapters (https://ffmpeg.org/ffmpeg-formats.html#Metadata-1), so ``ffmpeg -i video.mp4`` lists them.
The encoder is the ffmpeg binary of the ``imageio-ffmpeg`` wheel.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legible._errors import PrerequisiteMissing

#: Frame rate the GIF's speed-up is computed at, in frames per second (the MP4 keeps each frame's duration).
FPS = 10
#: Longest GIF, in seconds (longer walkthroughs are sped up to fit).
GIF_MAX_S = 12.0
#: GIF width in px.
GIF_WIDTH = 640


def ffmpeg_exe() -> str:
    """Return the path of imageio-ffmpeg's ffmpeg.

    Raises:
        PrerequisiteMissing: imageio-ffmpeg is not installed.

    """
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise PrerequisiteMissing(
            "imageio-ffmpeg is not installed (it provides the video encoder)",
            hint="pip install 'legible[browser]'  (or: pip install imageio-ffmpeg)",
        ) from exc
    return str(imageio_ffmpeg.get_ffmpeg_exe())


@dataclass(frozen=True)
class Chapter:
    """A chapter of the video.

    Attributes:
        title: the chapter card's text.
        start_s: seconds from the first frame.

    """

    title: str
    start_s: float


def encode(
    frames: list[tuple[Path, float]], chapters: list[Chapter], out_dir: Path, name: str = "walkthrough"
) -> dict[str, Any]:
    """Encode ``frames`` (``[(jpeg, timestamp_s)]`` in order) into ``out_dir/<name>.mp4``, ``.gif`` and a poster.

    Args:
        frames: JPEG files and their capture times in seconds (any epoch; only differences matter).
        chapters: chapter titles with start times relative to the first frame.
        out_dir: where the outputs go (created).
        name: base name of the outputs.

    Returns:
        ``{"video", "gif", "poster", "duration_s", "bytes", "gif_bytes", "frames", "chapters"}`` (paths as
        strings).

    Raises:
        PrerequisiteMissing: no ffmpeg.
        ValueError: no frames.
        RuntimeError: ffmpeg failed (the message holds its last stderr line).

    """
    if not frames:
        raise ValueError("no frames were captured")
    exe = ffmpeg_exe()
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = frames[0][1]
    lines = []
    for i, (path, ts) in enumerate(frames):
        nxt = frames[i + 1][1] if i + 1 < len(frames) else ts + 1.0  # hold the last frame one second
        lines.append(f"file '{path.resolve()}'")
        lines.append(f"duration {max(nxt - ts, 0.001):.4f}")
    lines.append(f"file '{frames[-1][0].resolve()}'")  # the concat demuxer ignores the last duration otherwise
    listing = out_dir / f"{name}.frames.txt"
    listing.write_text("\n".join(lines) + "\n")
    total = frames[-1][1] - t0 + 1.0
    meta = [";FFMETADATA1"]
    for i, ch in enumerate(chapters):
        end = chapters[i + 1].start_s if i + 1 < len(chapters) else total
        meta += [
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={int(ch.start_s * 1000)}",
            f"END={max(int(end * 1000), int(ch.start_s * 1000) + 1)}",
            f"title={_meta_escape(ch.title)}",
        ]
    meta_file = out_dir / f"{name}.chapters.txt"
    meta_file.write_text("\n".join(meta) + "\n")
    video = out_dir / f"{name}.mp4"
    gif = out_dir / f"{name}.gif"
    speed = max(1.0, total / GIF_MAX_S)
    # One ffmpeg process decodes each frame once and writes both: the MP4 keeps each frame's own duration
    # (variable frame rate: a held card is one frame shown 0.7 s, not 7 copies), the GIF is resampled to
    # 5 fps at 640 px with a 64-colour palette of its own. No B-frames: with them the MP4 muxer's edit list
    # cuts a variable-frame-rate video short (a 16.9 s walkthrough reported and played as 15.2 s).
    gif_chain = (
        f"fps={FPS},setpts=PTS/{speed:.3f},fps=5,scale={GIF_WIDTH}:-2:flags=lanczos,split[a][b];"
        "[a]palettegen=max_colors=64:stats_mode=diff[p];[b][p]paletteuse=dither=none"
    )
    graph = f"[0:v]scale=trunc(iw/2)*2:trunc(ih/2)*2,split[m0][g0];[m0]format=yuv420p[m];[g0]{gif_chain}[g]"
    _run_all(
        [
            [
                exe, "-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                "-i", str(meta_file), "-filter_complex", graph,
                "-map", "[m]", "-map_metadata", "1", "-map_chapters", "1", "-fps_mode", "vfr",
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-tune", "stillimage", "-bf", "0",
                "-movflags", "+faststart", str(video),
                "-map", "[g]", str(gif),
            ],
        ]
    )  # fmt: skip
    poster = out_dir / f"{name}-poster.jpg"
    shutil.copyfile(frames[-1][0], poster)
    info = probe(video)
    return {
        "video": str(video),
        "gif": str(gif),
        "poster": str(poster),
        "duration_s": info["duration_s"],
        "bytes": video.stat().st_size,
        "gif_bytes": gif.stat().st_size,
        "frames": len(frames),
        "chapters": [{"title": c.title, "start_s": round(c.start_s, 2)} for c in chapters],
    }


def encode_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """Encode a plan of :meth:`legible.browser._common.Recorder.plan` with :func:`encode` (blocking).

    Args:
        plan: ``{"frames": [[jpeg path, s]...], "chapters": [[title, start s]...], "out_dir", "name"}``.

    Returns:
        What :func:`encode` returns.

    Raises:
        PrerequisiteMissing: no ffmpeg.
        ValueError: no frames.
        RuntimeError: ffmpeg failed.

    """
    frames = [(Path(p), float(ts)) for p, ts in plan["frames"]]
    chapters = [Chapter(str(t), float(s)) for t, s in plan["chapters"]]
    return encode(frames, chapters, Path(plan["out_dir"]), str(plan["name"]))


def _meta_escape(s: str) -> str:
    return re.sub(r"([=;#\\\n])", r"\\\1", s)


def _run_all(argvs: list[list[str]]) -> None:
    """Run the ffmpeg command lines ``argvs`` at once; raise RuntimeError naming the first that failed."""
    procs = [subprocess.Popen(a, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for a in argvs]
    errors = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        if p.returncode != 0:
            last = (err.strip().splitlines() or ["no output"])[-1]
            errors.append(f"ffmpeg failed ({p.returncode}): {last}")
    if errors:
        raise RuntimeError(errors[0])


def probe(path: Path) -> dict[str, Any]:
    """Read a video's duration, size and chapter count from ``ffmpeg -i`` (no ffprobe needed).

    Returns:
        ``{"duration_s": float, "width": int, "height": int, "codec": str, "chapters": int}``; zeros and
        ``""`` for what ffmpeg did not report.

    """
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, check=False)
    text = out.stderr
    dur = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    size = re.search(r"Video: (\w+).*?, (\d{2,5})x(\d{2,5})", text)
    return {
        "duration_s": (int(dur[1]) * 3600 + int(dur[2]) * 60 + float(dur[3])) if dur else 0.0,
        "codec": size[1] if size else "",
        "width": int(size[2]) if size else 0,
        "height": int(size[3]) if size else 0,
        "chapters": len(re.findall(r"^\s*Chapter #", text, re.MULTILINE)),
    }


def frame_rgb(path: Path, at_s: float, width: int = 64) -> tuple[int, int, list[int]]:
    """Decode the frame a player shows at ``at_s`` seconds of ``path``, scaled to ``width`` px, as RGB bytes.

    The MP4 has a variable frame rate (a held frame is one frame with a long duration), and ``ffmpeg -ss``
    drops every frame that starts before the seek point, so the video is resampled to 100 fps first (the
    ``fps`` filter repeats the frame on screen at each tick) and the first tick at or after ``at_s`` is taken.

    Returns:
        ``(width, height, [r, g, b, r, g, b, ...])``.

    Raises:
        RuntimeError: ffmpeg could not decode a frame there.

    """
    info = probe(path)
    height = max(2, round(info["height"] * width / max(info["width"], 1)))
    out = subprocess.run(
        [
            ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-frames:v", "1",
            "-vf", f"fps=100,select='gte(t,{at_s:.3f})',scale={width}:{height}",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
        ],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    if out.returncode != 0 or len(out.stdout) < width * height * 3:
        raise RuntimeError(f"could not decode a frame at {at_s} s of {path}")
    return width, height, list(out.stdout[: width * height * 3])
