"""The walkthrough encoder with the real ffmpeg (imageio-ffmpeg's): durations, chapters, the GIF, seeking."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from legible.browser._video import Chapter, encode, ffmpeg_exe, frame_rgb, probe

# The gaps between the frames of a recorded checkout walk (s): screencast frames, cards held 0.7 s, typing.
# With B-frames, x264 and the MP4 muxer played exactly this sequence as 15.24 s instead of 16.88 s.
GAPS = [
    0.0597, 0.0333, 0.0371, 1.0296, 0.0333, 0.0219, 0.7281, 0.0167, 0.0500, 0.0369, 0.7298, 0.1500, 0.0667,
    0.0333, 0.0656, 0.7177, 0.2333, 0.0333, 0.0732, 0.4601, 0.2167, 0.0833, 0.0932, 0.7234, 0.1667, 0.0167,
    0.0985, 0.4348, 0.1833, 0.0833, 0.0167, 0.0283, 0.7384, 0.0167, 0.0333, 0.0409, 0.7257, 0.1167, 0.0333,
    0.0696, 0.4304, 0.0667, 0.0167, 0.0500, 0.0667, 0.0500, 0.0333, 0.0333, 0.0833, 0.0333, 0.0333, 0.1500,
    0.0425, 0.7242, 0.0833, 0.1435, 0.4398, 0.0667, 0.0333, 0.0456, 0.0290, 0.0290, 0.0623, 0.0623, 0.0623,
    0.0456, 0.0456, 0.0456, 0.0290, 0.0623, 0.0167, 0.0333, 0.0377, 0.7290, 0.0667, 0.0333, 0.0619, 0.4547,
    0.0833, 0.0167, 0.0667, 0.0500, 0.0269, 0.7397, 0.0667, 0.0167, 0.0709, 0.4291, 0.0833, 0.2000, 0.1833,
    0.0367, 0.7467,
]  # fmt: skip


def _frames(tmp: Path) -> list[Path]:
    """Eight distinct 1280x800 JPEGs (ffmpeg's test pattern in eight hues); the last is plain dark blue."""
    out = []
    for i in range(8):
        path = tmp / f"src{i}.jpg"
        source = "color=c=0x1a3d7c:size=1280x800" if i == 7 else f"testsrc2=size=1280x800,hue=h={i * 40}"
        subprocess.run(
            [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", source, "-frames:v", "1", str(path)],
            check=True,
        )
        out.append(path)
    return out


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("video")
    images = _frames(tmp)
    frames, t = [], 100.0
    for i in range(len(GAPS) + 1):
        frames.append((images[7] if i == 3 else images[i % 7], t))  # frame 3: a card, held 1.03 s
        t += GAPS[i] if i < len(GAPS) else 0.0
    chapters = [Chapter("Journey: checkout", frames[3][1] - 100.0), Chapter("the end", 10.0)]
    return encode(frames, chapters, tmp / "out", "walk")


def test_the_mp4_lasts_as_long_as_its_frames_were_on_screen(walkthrough: dict[str, object]) -> None:
    listed = sum(GAPS) + 1.0  # the last frame is held one second
    info = probe(Path(str(walkthrough["video"])))
    assert info["codec"] == "h264" and (info["width"], info["height"]) == (1280, 800)
    assert abs(info["duration_s"] - listed) < 0.1, (info, listed)
    assert info["chapters"] == 2


def test_a_held_frame_is_what_a_player_shows_throughout_its_hold(walkthrough: dict[str, object]) -> None:
    video = Path(str(walkthrough["video"]))
    start = sum(GAPS[:3])
    for at in (start + 0.05, start + 0.5, start + 0.95):  # one frame in the MP4, shown 1.03 s
        w, h, px = frame_rgb(video, at)
        r, g, b = (sum(px[i::3]) / (w * h) for i in range(3))
        assert b > 90 and b > r + 50, (at, r, g, b)
    w, h, px = frame_rgb(video, start + 1.1)  # the next frame is the test pattern again
    r, g, b = (sum(px[i::3]) / (w * h) for i in range(3))
    assert not (b > 90 and b > r + 50), (r, g, b)


def test_the_gif_is_small_and_the_poster_is_the_last_frame(walkthrough: dict[str, object]) -> None:
    gif = Path(str(walkthrough["gif"]))
    assert gif.read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    assert 0 < gif.stat().st_size < 2_000_000
    assert Path(str(walkthrough["poster"])).is_file()
    assert [c["title"] for c in walkthrough["chapters"]] == ["Journey: checkout", "the end"]  # type: ignore[attr-defined]
