"""Issue 22 (reliability round 3), video and batches: --max-size on clips, odd files that must not
abort a batch, audio that a container cannot hold, SIGTERM, silent omissions, frame rates out of
range, long names, damaged packets and odd frame sizes. Clips are made here with PyAV, tiny."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")

from fastpercept.apps import cli  # noqa: E402
from fastpercept.atomic import atomic_folder, atomic_write  # noqa: E402
from fastpercept.errors import UserError  # noqa: E402
from fastpercept.runtime.listing import plan_outputs  # noqa: E402
from fastpercept.runtime.video import probe_video, transform_video  # noqa: E402


def make_clip(path: Path, frames: int = 6, size: tuple[int, int] = (64, 48), *, audio: str | None = None,
              codec: str = "libx264", pix_fmt: str = "yuv420p", start: int = 0, muxer: str | None = None,
              layout: str = "mono") -> Path:
    """A clip of moving gradients at 25 fps; ``audio``: an AAC ("aac") or PCM ("pcm_s16le") track."""
    w, h = size
    out = av.open(str(path), "w", format=muxer)
    video = out.add_stream(codec, rate=25)
    video.width, video.height, video.pix_fmt = w, h, pix_fmt
    video.time_base = Fraction(1, 25)
    sound = None
    if audio:
        sound = out.add_stream(audio, rate=16000)
        sound.layout = layout
    xs = np.linspace(0, 1, w)[None, :, None]
    for i in range(frames):
        rgb = (np.clip(xs + 0.05 * i, 0, 1) * np.array([255, 128, 60]) * np.ones((h, 1, 1))).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = start + i
        out.mux(video.encode(frame))
    out.mux(video.encode())
    if sound is not None:
        samples = (0.3 * np.sin(np.arange(16000 * frames // 25) / 6) * 32767).astype(np.int16)
        channels = 2 if layout == "stereo" else 1
        samples = np.repeat(samples, channels)[None]  # interleaved
        chunk = av.AudioFrame.from_ndarray(samples, format="s16", layout=layout)
        chunk.sample_rate, chunk.pts = 16000, 0
        out.mux(sound.encode(chunk))
        out.mux(sound.encode())
    out.close()
    return path


def audio_seconds(path: Path) -> tuple[str, float]:
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(stream))
        return stream.codec_context.name, samples / stream.codec_context.sample_rate


def run_cli(capsys, *args) -> tuple[int, str, list[str]]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, [line for line in err.splitlines() if line.strip()]


def hidden(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def image(path: Path, size: tuple[int, int] = (24, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 120, 40)).save(path)
    return path


# ----------------------------------------------------------------------------- 4. --max-size on clips


def test_max_size_reduces_every_frame_of_a_clip(tmp_path, capsys):
    clip = make_clip(tmp_path / "c.mp4", frames=3, size=(160, 120), audio="aac")
    code, _, err = run_cli(capsys, "stylize", clip, "--max-size", "64", "-o", tmp_path / "s.mp4", "--no-stable")
    assert code == 0, err
    assert (probe_video(tmp_path / "s.mp4").width, probe_video(tmp_path / "s.mp4").height) == (64, 48)
    code, _, err = run_cli(capsys, "upscale", clip, "--max-size", "64", "-o", tmp_path / "u.mp4")
    assert code == 0, err
    info = probe_video(tmp_path / "u.mp4")
    assert (info.width, info.height, info.frames, info.audio_streams) == (256, 192, 3, 1)
    # A folder of frames, in and out.
    code, _, err = run_cli(capsys, "stylize", clip, "--frames", "--max-size", "64", "-o", tmp_path / "frames/",
                           "--no-stable")
    assert code == 0, err
    code, _, err = run_cli(capsys, "upscale", tmp_path / "frames", "--frames", "--max-size", "32", "-o",
                           tmp_path / "f.mp4")
    assert code == 0, err
    assert (probe_video(tmp_path / "f.mp4").width, probe_video(tmp_path / "f.mp4").height) == (128, 96)


# ---------------------------------------------------------------- 6. one odd file does not abort a batch


def test_an_output_name_over_255_bytes_is_one_line_and_the_batch_goes_on(tmp_path, capsys):
    long = image(tmp_path / "in" / ("é" * 120 + ".png"))  # 244 bytes; with "-mosaic" 251... and more below
    longer = image(tmp_path / "in" / ("a" * 248 + ".png"))  # its output a...a-mosaic.png is 259 bytes
    image(tmp_path / "in" / "ok.png")
    code, out, err = run_cli(capsys, "stylize", tmp_path / "in")
    assert code == 2
    assert len(err) == 2 and str(longer) in err[0] and "259 bytes" in err[0] and "1 of 3 inputs failed" in err[1]
    assert (tmp_path / "in" / "ok-mosaic.png").exists()
    assert (tmp_path / "in" / f"{long.stem}-mosaic.png").exists()  # 251 bytes: legal, and written


def test_temporary_names_stay_within_255_bytes_when_the_final_name_does(tmp_path):
    name = "x" * 251 + ".png"  # 255 bytes: the longest legal name
    with atomic_write(tmp_path / name) as tmp:
        assert len(os.fsencode(tmp.name)) <= 255
        tmp.write_bytes(b"data")
    assert (tmp_path / name).read_bytes() == b"data"
    with atomic_folder(tmp_path / ("é" * 127)) as tmp:  # 254 bytes, two per character
        assert len(os.fsencode(tmp.name)) <= 255
        (tmp / "000001.png").write_bytes(b"frame")
    assert [p.name for p in (tmp_path / ("é" * 127)).iterdir()] == ["000001.png"]
    assert hidden(tmp_path) == []


def test_symbolic_links_that_lead_nowhere_are_one_line_each(tmp_path, capsys):
    folder = tmp_path / "in"
    image(folder / "ok.png")
    (folder / "self.png").symlink_to("self.png")
    (folder / "gone.png").symlink_to("missing.png")
    code, _, err = run_cli(capsys, "stylize", folder)
    assert code == 2 and len(err) == 3, err
    assert f"{folder / 'gone.png'}: a symbolic link to a missing file" in err[0]
    assert f"{folder / 'self.png'}: a symbolic link that leads back to itself" in err[1]
    assert (folder / "ok-mosaic.png").exists()
    code, _, err = run_cli(capsys, "stylize", folder / "self.png")
    assert code == 2 and len(err) == 1 and "leads back to itself" in err[0]


def changing_size_clip(tmp_path: Path) -> Path:
    """A Matroska clip whose frames change size mid-stream: two MPEG-TS segments (64x48, then 48x32)
    joined, then remuxed."""
    first = make_clip(tmp_path / "a.ts", frames=4, muxer="mpegts")
    second = make_clip(tmp_path / "b.ts", frames=4, size=(48, 32), start=10, muxer="mpegts")
    (tmp_path / "joined.ts").write_bytes(first.read_bytes() + second.read_bytes())
    clip = tmp_path / "changing.mkv"
    with av.open(str(tmp_path / "joined.ts")) as src, av.open(str(clip), "w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    with av.open(str(clip)) as c:
        assert {(f.width, f.height) for f in c.decode(video=0)} == {(64, 48), (48, 32)}
    return clip


def test_a_clip_whose_frames_change_size_is_written_at_the_first_size(tmp_path, capsys, caplog):
    clip = changing_size_clip(tmp_path)
    make_clip(tmp_path / "other.mp4")
    code, out, err = run_cli(capsys, "stylize", clip, tmp_path / "other.mp4", "-o", tmp_path / "out/", "--no-stable")
    assert code == 0, err
    info = probe_video(tmp_path / "out" / "changing.mkv")
    assert (info.width, info.height, info.frames) == (64, 48, 8)
    assert "frame size changes from 64x48 to 48x32" in caplog.text
    assert (tmp_path / "out" / "other.mp4").exists()


def test_a_clip_of_one_pixel_is_written_padded(tmp_path, caplog):
    clip = make_clip(tmp_path / "dot.mkv", frames=3, size=(1, 1), pix_fmt="yuv444p")
    out = transform_video(clip, tmp_path / "dot.mp4", lambda x: x)
    info = probe_video(out)
    assert (info.width, info.height, info.frames) == (2, 2, 3)
    assert "padded to 2x2" in caplog.text


@pytest.mark.parametrize("size", [(10, 8), (128, 16)])
def test_small_and_thin_clips_are_stylized_in_the_stable_mode(tmp_path, size):
    clip = make_clip(tmp_path / "small.mp4", frames=3, size=size)
    done = subprocess.run([sys.executable, "-m", "fastpercept", "stylize", str(clip), "-o", str(tmp_path / "out.mp4")],
                          capture_output=True, text=True, timeout=120)  # a crash must not take pytest with it
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert (probe_video(tmp_path / "out.mp4").width, probe_video(tmp_path / "out.mp4").height) == size


# ---------------------------------------------------------- 7. audio a container cannot hold, codecs


@pytest.mark.parametrize("codec", ["aac", "pcm_s16le"])
def test_webm_output_converts_audio_it_cannot_hold_to_opus(tmp_path, codec):
    clip = make_clip(tmp_path / "c.mkv", frames=10, audio=codec)
    out = transform_video(clip, tmp_path / "out.webm", lambda x: x)
    name, seconds = audio_seconds(out)
    assert name == "opus" and seconds == pytest.approx(audio_seconds(clip)[1], abs=0.03)
    assert probe_video(out).frames == 10


def test_pcm_audio_of_unspecified_layout_is_copied_into_mp4(tmp_path):
    clip = make_clip(tmp_path / "c.mkv", frames=10, audio="pcm_s16le", layout="stereo")
    with av.open(str(clip)) as c:  # Matroska's PCM comes back as "2 channels", no layout: MP4 refuses that
        assert c.streams.audio[0].codec_context.layout.name == "2 channels"
    out = transform_video(clip, tmp_path / "out.mp4", lambda x: x)
    assert audio_seconds(out) == ("pcm_s16le", pytest.approx(0.4))


@pytest.mark.parametrize(("codec", "message"), [
    ("libx264", "out.webm: a .webm file cannot hold libx264 video; use libvpx-vp9"),
    ("aac", "video codec aac: not a video encoder"), ("nope", "video codec nope: not a video encoder")])
def test_a_codec_that_cannot_work_is_one_line_before_any_frame(tmp_path, capsys, codec, message):
    clip = make_clip(tmp_path / "c.mp4", audio="aac")
    frames_seen = []
    with pytest.raises(UserError, match=message):
        transform_video(clip, tmp_path / "out.webm", lambda x: frames_seen.append(x) or x, codec=codec)
    assert frames_seen == [] and sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4"]
    code, _, err = run_cli(capsys, "stylize", clip, "-o", tmp_path / "out.webm", "--codec", codec)
    assert code == 2 and len(err) == 1 and message in err[0]


# ----------------------------------------------------------------------------------------- 9. SIGTERM


@pytest.mark.parametrize("output", ["out.mp4", "frames/"])
def test_sigterm_is_an_interruption_that_leaves_nothing_behind(tmp_path, output):
    clip = make_clip(tmp_path / "long.mp4", frames=400, size=(96, 64), audio="aac")
    proc = subprocess.Popen([sys.executable, "-m", "fastpercept", "stylize", str(clip), "--frames" if
                             output.endswith("/") else "--no-stable", "-o", str(tmp_path / output)],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not hidden(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until the temporary output exists: the clip is being written
    assert proc.poll() is None, "the clip was done before it could be interrupted"
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and err.strip().splitlines()[-1] == "fastpercept: interrupted", err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]  # no output, no temporary file or folder


# -------------------------------------------------------------------------------- 11. silent omissions


def test_images_in_an_output_folder_inside_the_input_are_reported(tmp_path, capsys):
    photos = tmp_path / "photos"
    image(photos / "a.png")
    mine = image(photos / "sub" / "b.png")
    code, out, err = run_cli(capsys, "stylize", photos, "-o", photos / "sub")
    assert code == 2 and len(err) == 2, err
    assert f"{mine}: inside the output folder" in err[0]
    assert out.split() == [str(photos / "sub" / "a.png")]
    # An earlier result there is this run's output, not an input left out: nothing to report.
    code, _, err = run_cli(capsys, "stylize", photos, "-o", photos / "sub", "--overwrite")
    assert code == 2 and len(err) == 2 and "b.png" in err[0]


def test_a_users_own_file_named_like_a_result_is_an_input(tmp_path):
    folder = tmp_path / "photos"
    own = image(folder / "photo-mosaic.jpg")  # no photo.jpg beside it: the user's own photo
    a = image(folder / "a.png")
    image(folder / "a-mosaic.png")  # a.png's earlier result
    assert plan_outputs([folder], None, "mosaic", overwrite=True) == [
        (a, folder / "a-mosaic.png"), (own, folder / "photo-mosaic-mosaic.jpg")]


# ------------------------------------------------------------------------------ 13. tracebacks left


@pytest.mark.parametrize("fps", ["inf", "1e-9", "nan", "0"])
def test_frame_rates_out_of_range_are_one_line(tmp_path, capsys, fps):
    image(tmp_path / "frames" / "1.png")
    code, _, err = run_cli(capsys, "stylize", tmp_path / "frames", "--frames", "--fps", fps, "-o", tmp_path / "o.mp4")
    assert code == 2 and len(err) == 1 and err[0].startswith(f"fastpercept: error: --fps {float(fps):g}: give a")
    with pytest.raises(UserError, match="frame rate"):
        transform_video(tmp_path / "frames", tmp_path / "o.mp4", lambda x: x, fps=float(fps))
    assert not (tmp_path / "o.mp4").exists()


def test_upscale_with_a_style_model_says_so_before_planning(tmp_path, capsys):
    photo = image(tmp_path / "photo.png")
    image(tmp_path / "photo-mosaic.png")  # what `stylize photo.png` wrote earlier
    code, _, err = run_cli(capsys, "upscale", photo, "--model", "mosaic")
    assert code == 2 and len(err) == 1 and "mosaic: a style model, not a super-resolution model" in err[0]
    code, _, err = run_cli(capsys, "stylize", photo, "--style", "x4")
    assert code == 2 and len(err) == 1 and "x4: a super-resolution model, not a style model" in err[0]


# ----------------------------------------------------------------------------------------------- 15. video


def damage_packet(clip: Path, index: int) -> Path:
    """``clip`` with the ``index``-th video packet (in file order) zeroed."""
    with av.open(str(clip)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    pos, size = packets[index]
    data = bytearray(clip.read_bytes())
    data[pos:pos + size] = bytes(size)
    damaged = clip.with_name("damaged" + clip.suffix)
    damaged.write_bytes(bytes(data))
    return damaged


def pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0)]


def test_a_damaged_packet_is_concealed_with_the_previous_frame(tmp_path, caplog):
    clip = make_clip(tmp_path / "c.mp4", frames=20)
    damaged = damage_packet(clip, 10)
    with caplog.at_level(logging.WARNING):
        out = transform_video(damaged, tmp_path / "out.mp4", lambda x: x, batch=3)
    assert pts(out) == pts(clip)  # every frame, at its time
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and r.name.startswith("fastpercept")]
    assert len(warnings) == 1 and "damaged.mp4: 1 damaged video packet" in warnings[0], warnings
    # Nothing decodable at all (the key frame damaged) is still refused, in one line.
    with pytest.raises(UserError, match="no video frame could be decoded"):
        transform_video(damage_packet(clip, 0), tmp_path / "none.mp4", lambda x: x)


def test_odd_sizes_are_padded_for_x264_and_kept_for_vp9(tmp_path, caplog):
    clip = make_clip(tmp_path / "odd.mkv", frames=3, size=(65, 49), pix_fmt="yuv444p")
    out = transform_video(clip, tmp_path / "out.mp4", lambda x: x)
    assert (probe_video(out).width, probe_video(out).height) == (66, 50)
    assert "the 65x49 frames are padded to 66x50" in caplog.text
    with av.open(str(out)) as c:
        rgb = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    assert np.abs(rgb[:, 65] - rgb[:, 64]).max() <= 8  # the last column repeated, not black
    webm = transform_video(clip, tmp_path / "out.webm", lambda x: x)
    assert (probe_video(webm).width, probe_video(webm).height) == (65, 49)
