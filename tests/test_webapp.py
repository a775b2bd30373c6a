"""The web app's handlers (fastpercept.apps.webapp.Handlers), without a browser or Gradio."""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import fastpercept
from fastpercept.errors import UserError
from fastpercept.runtime.images import target_size
from fastpercept.runtime.memory import image_pipeline_bytes
from fastpercept.models import DEFAULT_DENOISE, save_model
from fastpercept.nets.style import StyleNet, StyleNetConfig
from fastpercept.apps.webapp import (DEFAULT_UPSCALE_MAX_SIZE, DEFAULT_VIDEO_MAX_SIZE, RETENTION_S, Handlers,
                                     JobCancelled, _page_open, _upload_image, build_app, find_models, serve)

RUNTIME = dict(backend="torch", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def handlers(tmp_path_factory):
    return Handlers(find_models(), tmp_path_factory.mktemp("work"), **RUNTIME)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    rng = np.random.default_rng(0)
    arr = (np.kron(rng.random((6, 8, 3)), np.ones((8, 8, 1))) * 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("in") / "photo.png"
    Image.fromarray(arr).save(path)
    return path


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32)


def test_stylize_gives_the_before_after_pair_and_the_file(handlers, photo):
    (before, after), download = handlers.stylize(str(photo), "the_scream", 1.0, False, 2048)
    assert before == str(photo) and after == download
    out = _pixels(after)
    assert out.shape == (48, 64, 3)
    assert np.abs(out - _pixels(photo)).mean() > 10  # it really is stylized


def test_strength_zero_returns_the_photo(handlers, photo):
    _, download = handlers.stylize(str(photo), "mosaic", 0.0, False, 0)
    assert np.abs(_pixels(download) - _pixels(photo)).max() <= 1


def test_upscale_puts_bicubic_and_the_network_side_by_side(handlers, photo):
    (bicubic, network), download = handlers.upscale(str(photo), "x4")
    assert network == download
    assert _pixels(bicubic).shape == _pixels(network).shape == (192, 256, 3)


def test_upscale_offers_denoise_for_a_model_with_a_real_photo_twin(sr_pair, photo, tmp_path):
    from fastpercept.models import load_model

    h = Handlers(find_models(sr_pair), tmp_path / "work", **RUNTIME)
    assert "sr" in h.sr_choices() and "sr-real" not in h.sr_choices() and "x8" in h.sr_choices()
    assert h.has_denoise("sr") and not h.has_denoise("x8") and not h.has_denoise("sr-real")
    runs = {d: _pixels(h.upscale(str(photo), "sr", 0, denoise=d)[1]) for d in (0.0, 0.5, 1.0)}
    net = {name: np.asarray(fastpercept.upscale(np.asarray(Image.open(photo).convert("RGB")),
                                                 load_model(sr_pair / f"{name}.safetensors"), **RUNTIME), np.float32)
           for name in ("sr", "sr-real")}
    assert np.array_equal(runs[0.0], net["sr"]) and np.array_equal(runs[1.0], net["sr-real"])
    assert not np.array_equal(runs[0.5], runs[0.0]) and not np.array_equal(runs[0.5], runs[1.0])
    # A model without a twin ignores the control.
    assert np.array_equal(_pixels(h.upscale(str(photo), "x8", 0, denoise=1.0)[1]),
                          _pixels(h.upscale(str(photo), "x8", 0, denoise=0.0)[1]))


def test_stylize_takes_an_uploaded_painting_with_an_any_painting_model(handlers, photo, tmp_path):
    from fastpercept.architectures import WCTConfig
    from fastpercept.nets.wct import WCTNet

    models = tmp_path / "models"
    models.mkdir()
    net = WCTNet(WCTConfig(deepest="relu1_1"))  # untrained: the plumbing is under test
    save_model(net, models / "painter.safetensors", {"task": "anystyle", **net.config.to_dict()})
    h = Handlers(find_models(models), tmp_path / "work", **RUNTIME)
    assert "painter" in h.catalogue.painters and "painter" not in h.catalogue.styles
    art = tmp_path / "my monet.png"
    Image.fromarray((np.random.default_rng(1).random((40, 30, 3)) * 255).astype(np.uint8)).save(art)
    (_, network), download = h.stylize(str(photo), "mosaic", 1.0, False, 0, str(art))
    assert Path(download).name.startswith("photo_my monet") and _pixels(network).shape == _pixels(photo).shape
    mosaic = h.stylize(str(photo), "mosaic", 1.0, False, 0, None)[1]
    assert not np.array_equal(_pixels(download), _pixels(mosaic))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"^broken\.jpg"):
        h.stylize(str(photo), "mosaic", 1.0, False, 0, str(broken))
    h.catalogue.painters.clear()
    with pytest.raises(UserError, match="no any-painting model"):
        h.stylize(str(photo), "mosaic", 1.0, False, 0, str(art))


def _clip(path: Path, frames: int = 6, width: int = 64, height: int = 48) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = np.full((height, width, 3), 40 * i % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_a_video_comes_back_stylized_with_progress(handlers, tmp_path):
    import av

    clip = _clip(tmp_path / "clip.mp4")
    seen = []
    result = handlers.stylize_video(str(clip), "udnie", 1.0, progress=lambda done, total: seen.append((done, total)))
    with av.open(result) as c:
        assert sum(1 for _ in c.decode(video=0)) == 6
    assert seen[-1] == (6, 6)


@pytest.mark.parametrize("call, message", [
    (lambda h, p: h.stylize(None, "mosaic"), "upload an image first"),
    (lambda h, p: h.stylize(str(p), "no_such_style"), "unknown style 'no_such_style'"),
    (lambda h, p: h.upscale(str(p), "x3"), "unknown model 'x3'"),
    (lambda h, p: h.stylize_video(None, "mosaic"), "upload a video first"),
])
def test_bad_requests_are_one_line_messages(handlers, photo, call, message):
    with pytest.raises(UserError, match=message):
        call(handlers, photo)


def test_a_corrupt_upload_is_named_by_its_file_name_not_the_servers_path(handlers, photo, tmp_path):
    upload = tmp_path / "deep" / "tmp" / "holiday.jpg"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(photo.read_bytes()[:100])
    with pytest.raises(UserError) as caught:
        handlers.stylize(str(upload), "mosaic")
    assert str(caught.value).startswith("holiday.jpg: ") and str(tmp_path) not in str(caught.value)


def test_models_in_a_folder_join_the_catalogue(tmp_path):
    torch.manual_seed(0)
    card = {"task": "style", "arch": "half", "norm": "instance", "upsample": "nearest", "style_image": "x.png"}
    save_model(StyleNet(StyleNetConfig(arch="half")), tmp_path / "mine.safetensors", card)
    (tmp_path / "broken.safetensors").write_bytes(b"not a model")
    catalogue = find_models(tmp_path)
    assert catalogue.styles["mine"] == tmp_path / "mine.safetensors"
    assert "mosaic" in catalogue.styles and "x4" in catalogue.sr and "broken" not in catalogue.styles
    with pytest.raises(UserError, match="not a folder"):
        find_models(tmp_path / "missing")


def test_every_style_gets_a_thumbnail_made_once(handlers):
    shots = handlers.thumbnails(size=48)
    assert [name for _, name in shots] == list(handlers.catalogue.styles)
    first = {path: os.stat(path).st_mtime_ns for path, _ in shots}
    assert {path: os.stat(path).st_mtime_ns for path, _ in handlers.thumbnails(size=48)} == first


# --- one job at a time (issue 22, item 1) --------------------------------------------------------


def test_one_job_runs_at_a_time_whoever_calls(handlers, photo, tmp_path):
    """A second job waits for the running one's slot: two users' jobs never share the runners."""
    clip = _clip(tmp_path / "clip.mp4")
    handlers.stylize(str(photo), "mosaic")  # warm: the waiting job below would take well under a second
    holding, release = threading.Event(), threading.Event()

    def hold(done: int, total: int) -> None:
        holding.set()
        release.wait(60)

    video = threading.Thread(target=handlers.stylize_video, args=(str(clip), "udnie"), kwargs={"progress": hold})
    video.start()
    try:
        assert holding.wait(120)
        image = threading.Thread(target=handlers.stylize, args=(str(photo), "mosaic"))
        image.start()
        image.join(3)
        waited = image.is_alive()
    finally:
        release.set()
        video.join(120)
    image.join(120)
    assert waited, "the image job ran while the video job held the slot"


def test_a_video_whose_page_was_closed_stops_and_frees_the_slot(handlers, photo, tmp_path):
    clip = _clip(tmp_path / "clip.mp4", frames=12)
    seen = []

    def page_closed(done: int, total: int) -> None:
        seen.append(done)
        raise JobCancelled("clip.mp4: stopped: its page was closed")

    before = set(handlers.workdir.rglob("*"))
    with pytest.raises(JobCancelled, match="clip.mp4: stopped"):
        handlers.stylize_video(str(clip), "udnie", progress=page_closed)
    assert seen == [4]  # stopped at its first batch of frames, not after all 12
    assert not [p for p in set(handlers.workdir.rglob("*")) - before if p.is_file()]  # nothing half-written
    handlers.stylize(str(photo), "mosaic")  # the next job gets the slot


def test_the_page_check_follows_gradio_s_queue():
    """What the video job asks after each batch: is its Gradio event still alive and running?"""
    from gradio.context import LocalContext

    event = SimpleNamespace(_id="job-1", alive=True)
    queue = SimpleNamespace(active_jobs=[None, [event]])

    def in_the_job():
        LocalContext.blocks.set(SimpleNamespace(_queue=queue))
        LocalContext.event_id.set("job-1")
        return _page_open()

    is_open = contextvars.copy_context().run(in_the_job)
    assert is_open()
    event.alive = False  # the page's connection closed
    assert not is_open()
    event.alive, queue.active_jobs[1] = True, None  # Gradio cancelled the job and gave its slot away
    assert not is_open()
    assert _page_open()()  # outside a Gradio job (tests, the API) nothing is cancelled


# --- Upscale memory and the longest side (items 2 and 4) ------------------------------------------


def test_upscale_and_video_take_a_longest_side(handlers, photo, tmp_path):
    (bicubic, network), _ = handlers.upscale(str(photo), "x4", 32)
    assert _pixels(bicubic).shape == _pixels(network).shape == (96, 128, 3)
    import av

    result = handlers.stylize_video(str(_clip(tmp_path / "clip.mp4")), "udnie", 1.0, 32)
    with av.open(result) as c:
        assert next(c.decode(video=0)).to_ndarray(format="rgb24").shape == (24, 32, 3)


def test_the_default_longest_sides_keep_a_phone_photo_small():
    # A 12 MP photo x4 at full size asks the memory check for several GiB; at the default, what one
    # network tile needs and little more.
    phone = (4000, 3000)
    assert image_pipeline_bytes(phone, phone, 4) > 6 * 2**30
    assert image_pipeline_bytes(phone, target_size(*phone, DEFAULT_UPSCALE_MAX_SIZE), 4) < 1.5 * 2**30
    assert DEFAULT_VIDEO_MAX_SIZE <= 1280


def test_an_upscale_that_does_not_fit_is_refused_before_the_network_runs(handlers, photo, monkeypatch):
    monkeypatch.setattr("fastpercept.runtime.images.available_memory", lambda device="cpu": 64 * 2**20)
    before = set(handlers.workdir.iterdir())
    with pytest.raises(UserError, match=r"^photo\.png: .*needs about"):
        handlers.upscale(str(photo), "x4")
    assert set(handlers.workdir.iterdir()) == before


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads Linux's /proc")
def test_memory_returns_near_its_idle_level_after_upscale_jobs(handlers, photo):
    # One job to warm the runner, then three: the process holds no more than a few tens of MB
    # more than after the first (each job's own peak is about 50 MB over idle; the float
    # preview used to leave GBs behind on a 1000 px photo).
    handlers.upscale(str(photo), "x4")
    idle = _rss()
    grown = []
    for _ in range(3):
        handlers.upscale(str(photo), "x4")
        grown.append(_rss() - idle)
    assert max(grown) < 64 * 2**20, [f"{g / 2**20:.0f} MB" for g in grown]


# --- errors in the page, bad models, the port, retention (item 10) ---------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG that says it is width x height (a decompression bomb: its data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\0" * 100)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


@pytest.mark.parametrize("name, data, problem", [
    ("holiday.jpg", b"this is a text file, renamed", "not an image"),
    ("empty.jpg", b"", "empty file"),
    ("bomb.png", _png_header(40000, 40000), "image too large"),
])
def test_a_bad_upload_is_one_line_naming_it(handlers, tmp_path, name, data, problem):
    from gradio.data_classes import ImageData

    upload = tmp_path / "gradio" / "0123abcd" / name  # where Gradio keeps an upload: its own name in a folder
    upload.parent.mkdir(parents=True)
    upload.write_bytes(data)
    # The upload reaches the handler as it is (Gradio's own check opens it with Pillow and shows
    # Pillow's message with the server's path) ...
    path = _upload_image().preprocess(ImageData(path=str(upload), orig_name=name))
    assert path == str(upload)
    # ... and the handler's message names it by its file name.
    for job in (lambda: handlers.stylize(path, "mosaic"), lambda: handlers.upscale(path, "x4")):
        with pytest.raises(UserError) as caught:
            job()
        message = str(caught.value)
        assert message.startswith(f"{name}: ") and problem in message and str(tmp_path) not in message
        assert "\n" not in message


def test_a_model_that_cannot_run_is_skipped_and_the_rest_served(handlers, tmp_path, caplog):
    torch.manual_seed(0)
    card = {"task": "style", "arch": "half", "norm": "instance", "upsample": "nearest", "style_image": "x.png"}
    save_model(StyleNet(StyleNetConfig(arch="half")), tmp_path / "mine.safetensors", card)
    # A card that reads but weights of another architecture: the first job would fail, and before, the
    # thumbnails at start-up stopped the server.
    save_model(StyleNet(StyleNetConfig(arch="half")), tmp_path / "wrong.safetensors", {**card, "arch": "johnson"})
    with caplog.at_level(logging.WARNING, logger="fastpercept.apps.webapp"):
        catalogue = find_models(tmp_path)
    assert "mine" in catalogue.styles and "wrong" not in catalogue.styles and "mosaic" in catalogue.styles
    assert any("wrong.safetensors" in r.getMessage() for r in caplog.records)
    # A style that loads but does not run leaves the gallery with a warning; the others stay.
    catalogue.styles["gone"] = tmp_path / "gone.safetensors"
    work = Handlers(catalogue, handlers.workdir, **RUNTIME)
    with caplog.at_level(logging.WARNING, logger="fastpercept.apps.webapp"):
        names = [name for _, name in work.thumbnails(size=48)]
    assert "gone" not in names and "gone" not in catalogue.styles and "mosaic" in names
    assert any("gone.safetensors" in r.getMessage() for r in caplog.records)


def test_serve_checks_the_port_before_loading_anything(monkeypatch):
    def no_models(*args, **kwargs):
        raise AssertionError("models loaded before the port was checked")

    monkeypatch.setattr("fastpercept.apps.webapp.find_models", no_models)
    with pytest.raises(UserError, match="port 70000: not a TCP port"):
        serve(port=70000)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError, match=f"127.0.0.1:{port}: in use by another server"):
            serve(port=port)


def test_serve_with_a_bad_port_is_one_line_and_exit_2():
    run = subprocess.run([sys.executable, "-m", "fastpercept", "serve", "--port", "70000"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0, run.stderr
    assert "70000" in run.stderr and "Traceback" not in run.stderr


def test_old_jobs_are_deleted_and_closing_deletes_everything(photo, tmp_path):
    work = Handlers(find_models(), tmp_path / "work", retention_s=60, **RUNTIME)
    old = work.workdir / "0123456789ab"
    old.mkdir()
    (old / "photo_mosaic.png").write_bytes(b"an hour-old result")
    os.utime(old, (0, 0))
    _, kept = work.stylize(str(photo), "mosaic", 1.0, False, 32)
    assert not old.exists() and Path(kept).exists()
    work.close()
    assert not work.workdir.exists()


def test_the_page_offers_longest_sides_and_deletes_uploads(handlers, tmp_path):
    import gradio as gr
    from gradio.data_classes import ImageData

    app = build_app(handlers)
    assert app.delete_cache == (RETENTION_S // 4, RETENTION_S)  # Gradio's copies of uploads and results
    inputs = {fn.api_name: fn.inputs for fn in app.fns.values()}
    for api_name, value in (("upscale", DEFAULT_UPSCALE_MAX_SIZE), ("stylize_video", DEFAULT_VIDEO_MAX_SIZE)):
        sizes = [c for c in inputs[api_name] if isinstance(c, gr.Number)]
        assert [c.value for c in sizes] == [value], api_name
    denoise = [c for c in inputs["upscale"] if isinstance(c, gr.Slider)]
    assert [c.value for c in denoise] == [DEFAULT_DENOISE]
    uploads = [c for c in inputs["stylize"] + inputs["upscale"] if isinstance(c, gr.Image)]
    fake = tmp_path / "holiday.jpg"
    fake.write_text("not a photo")
    assert len(uploads) == 3 and all(c.preprocess(ImageData(path=str(fake))) == str(fake) for c in uploads)
    painting = next(c for c in inputs["stylize"] if isinstance(c, gr.Image) and c.elem_id == "style-painting")
    assert painting.visible == bool(handlers.catalogue.painters)
    gallery = next(b for b in app.blocks.values() if isinstance(b, gr.Gallery))
    assert gallery.columns * gallery.rows >= len(handlers.catalogue.styles)  # every style in view, no scrolling
    assert gallery.allow_preview is False
