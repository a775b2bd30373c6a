"""Video in, video out: frame count, frame rate, timestamps and audio kept; bad files and interrupted
runs leave nothing behind; memory stays flat. The clips are made here with PyAV."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from fastpercept.apps import cli  # noqa: E402
from fastpercept.errors import UserError  # noqa: E402
from fastpercept.models import save_model  # noqa: E402
from fastpercept.nets.style import StyleNet, StyleNetConfig  # noqa: E402
from fastpercept.runtime.video import probe_video, transform_video  # noqa: E402


def make_clip(path: Path, frames: int = 20, size: tuple[int, int] = (64, 48), audio: bool = True,
              pts: list[int] | None = None) -> Path:
    """An H.264 clip of moving gradients at 25 fps (``pts`` in 1/25 s units: variable frame rate),
    with a 440 Hz AAC audio track covering it."""
    w, h = size
    out = av.open(str(path), "w")
    video = out.add_stream("libx264", rate=25)
    video.width, video.height, video.pix_fmt = w, h, "yuv420p"
    video.time_base = Fraction(1, 25)
    sound = None
    if audio:
        sound = out.add_stream("aac", rate=16000)
        sound.layout = "mono"
    xs = np.linspace(0, 1, w)[None, :, None]
    for i, t in enumerate(pts or range(frames)):
        rgb = (np.clip(xs + 0.05 * i, 0, 1) * np.array([255, 128, 60]) * np.ones((h, 1, 1))).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = t
        for packet in video.encode(frame):
            out.mux(packet)
    for packet in video.encode():
        out.mux(packet)
    if sound is not None:
        seconds = ((pts[-1] if pts else frames - 1) + 1) / 25
        samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(16000 * seconds)) / 16000)).astype(np.float32)
        for start in range(0, len(samples), 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, start
            for packet in sound.encode(chunk):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)
    out.close()
    return path


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def video_pts_seconds(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [round(float(f.pts * f.time_base), 4) for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def style_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    card = {"task": "style", "arch": "half", "norm": "instance", "upsample": "nearest", "style_image": "x.png"}
    return save_model(StyleNet(StyleNetConfig(arch="half")), tmp_path_factory.mktemp("m") / "toy.safetensors", card)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_stylize_a_clip_keeps_frames_rate_duration_and_audio(tmp_path, capsys, style_model):
    clip = make_clip(tmp_path / "clip.mp4")
    code, out, err = run_cli(capsys, "stylize", clip, "-o", tmp_path / "out.mp4", "--style", style_model,
                             "--precision", "fp32", "--backend", "torch")
    assert code == 0, err
    before, after = probe_video(clip), probe_video(tmp_path / "out.mp4")
    assert (after.frames, after.fps, after.width, after.height) == (20, 25.0, 64, 48)
    assert after.duration == pytest.approx(before.duration) and after.audio_streams == 1
    assert audio_packets(tmp_path / "out.mp4") == audio_packets(clip)  # copied, not re-encoded
    assert video_pts_seconds(tmp_path / "out.mp4") == video_pts_seconds(clip)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_variable_frame_rate_timestamps_are_kept(tmp_path, style_model):
    clip = make_clip(tmp_path / "vfr.mp4", pts=[0, 1, 2, 5, 6, 10, 11, 12], audio=False)
    out = transform_video(clip, tmp_path / "out.mkv", lambda x: 1 - x, batch=3)
    assert video_pts_seconds(out) == video_pts_seconds(clip) == [0.0, 0.04, 0.08, 0.2, 0.24, 0.4, 0.44, 0.48]


def test_the_network_sees_upright_rgb_in_batches(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=7, audio=False)
    seen = []
    transform_video(clip, tmp_path / "o.mp4", lambda x: seen.append(tuple(x.shape)) or x, batch=3)
    assert seen == [(3, 3, 48, 64), (3, 3, 48, 64), (1, 3, 48, 64)]


def rotate_display(clip: Path, dst: Path) -> Path:
    """``clip`` with a 90-degree display rotation in its track header (what a phone writes for a
    portrait clip): PyAV cannot write one, so the tkhd box's matrix is patched."""
    import struct

    data = bytearray(clip.read_bytes())
    box = data.find(b"tkhd")
    assert box > 0 and data[box + 4] == 0  # version 0 header
    matrix = box + 4 + 4 + 20 + 8 + 8  # flags, times/ids/duration, reserved, layer..reserved
    assert struct.unpack(">9i", data[matrix:matrix + 36]) == (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)
    data[matrix:matrix + 36] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
    dst.write_bytes(bytes(data))
    return dst


def test_a_display_rotation_is_applied_to_the_frames(tmp_path):
    clip = rotate_display(make_clip(tmp_path / "c.mp4", frames=4, audio=False), tmp_path / "portrait.mp4")
    assert probe_video(clip).rotation == -90  # FFmpeg reads the header as a portrait clip
    seen = []
    out = transform_video(clip, tmp_path / "o.mp4", lambda x: seen.append(x) or x)
    assert tuple(seen[0].shape[-2:]) == (64, 48)  # the network sees the frames upright (portrait)
    info = probe_video(out)
    assert (info.width, info.height, info.rotation) == (48, 64, 0)  # written upright, no rotation flag left
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    # The clip's gradient runs left (dark) to right (bright); turned clockwise it runs top to bottom.
    assert frame[:8].mean() + 40 < frame[-8:].mean()
    assert abs(frame[:, :8].mean() - frame[:, -8:].mean()) < 10


def test_upscale_a_clip(tmp_path, capsys):
    clip = make_clip(tmp_path / "small.mp4", frames=6, size=(32, 24))
    code, _, err = run_cli(capsys, "upscale", clip, "-o", tmp_path / "big.mp4", "--backend", "torch")
    assert code == 0, err
    info = probe_video(tmp_path / "big.mp4")
    assert (info.frames, info.width, info.height, info.audio_streams) == (6, 128, 96, 1)


@pytest.mark.parametrize("damage", ["truncated", "not_video"])
def test_bad_video_is_one_line_and_exit_2(tmp_path, capsys, style_model, damage):
    bad = tmp_path / "bad.mp4"
    if damage == "truncated":
        data = make_clip(tmp_path / "good.mp4", frames=30).read_bytes()
        bad.write_bytes(data[: len(data) // 3])
    else:
        bad.write_text("not a video at all")
    code, _, err = run_cli(capsys, "stylize", bad, "-o", tmp_path / "out.mp4", "--style", style_model,
                           "--backend", "torch")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "bad.mp4" in lines[0] and "Traceback" not in err
    assert not (tmp_path / "out.mp4").exists()


def test_an_interrupted_run_leaves_no_output(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=12)
    calls = []

    def network(x):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):
        transform_video(clip, tmp_path / "out.mp4", network, batch=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4"]


def test_video_output_must_be_a_video_file(tmp_path, style_model):
    import fastpercept

    clip = make_clip(tmp_path / "c.mp4", frames=2, audio=False)
    with pytest.raises(UserError, match="cannot write '.png' videos"):
        fastpercept.stylize(clip, style_model, output=tmp_path / "c.png")
    with pytest.raises(UserError, match="give output="):
        fastpercept.stylize(clip, style_model)


def test_memory_stays_flat_on_a_long_clip(tmp_path):
    """300 frames of 256x256 held at once would be 236 MB as float; the pipeline holds a few."""
    script = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_video import make_clip
        from fastpercept.runtime.video import transform_video
        def peak(frames):
            clip = make_clip(__import__("pathlib").Path({str(tmp_path)!r}) / f"c{{frames}}.mp4", frames=frames,
                             size=(256, 256), audio=False)
            transform_video(clip, clip.with_name(f"o{{frames}}.mkv"), lambda x: x, batch=4)
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        short = peak(20)
        long = peak(300)
        print((long - short) / 1024)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.strip()) < 60, done.stdout  # MB of growth from 20 to 300 frames


def test_frames_out_and_back_in(tmp_path, capsys, caplog, style_model):
    clip = make_clip(tmp_path / "clip.mp4", frames=12)
    code, out, err = run_cli(capsys, "stylize", clip, "--frames", "-o", tmp_path / "frames", "--style", style_model)
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == [f"{i:06d}.png" for i in range(1, 13)]  # nothing else (no temporary leftovers)
    assert "frames carry no audio" in caplog.text
    code, out, err = run_cli(capsys, "stylize", tmp_path / "frames", "--frames", "-o", tmp_path / "back.mp4",
                             "--fps", "12.5", "--style", style_model, "--no-stable")
    assert code == 0, err
    info = probe_video(tmp_path / "back.mp4")
    assert (info.frames, info.fps, info.width, info.height) == (12, 12.5, 64, 48)
    # frames to frames: never into the input, and only into a new or empty folder
    code, _, err = run_cli(capsys, "stylize", tmp_path / "frames", "--frames", "-o", tmp_path / "frames",
                           "--style", style_model)
    assert code == 2 and "overwrite the input" in one_line(err)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    code, _, err = run_cli(capsys, "stylize", tmp_path / "frames", "--frames", "-o", tmp_path / "full",
                           "--style", style_model)
    assert code == 2 and "not empty" in one_line(err)
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["mine.txt"]
    code, _, err = run_cli(capsys, "stylize", tmp_path / "frames", "--frames", "-o", tmp_path / "again/",
                           "--style", style_model)
    assert code == 0 and len(list((tmp_path / "again").iterdir())) == 12


def test_frames_of_different_sizes_are_one_line_and_nothing_is_written(tmp_path, capsys, style_model):
    from PIL import Image

    (tmp_path / "in").mkdir()
    for i, size in enumerate([(32, 24), (32, 24), (40, 24)]):
        Image.new("RGB", size, (i * 60, 90, 30)).save(tmp_path / "in" / f"{i}.png")
    code, _, err = run_cli(capsys, "stylize", tmp_path / "in", "--frames", "-o", tmp_path / "out.mp4",
                           "--style", style_model)
    assert code == 2 and "2.png: a 40x24 frame among frames of 32x24" in one_line(err)
    assert not (tmp_path / "out.mp4").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
