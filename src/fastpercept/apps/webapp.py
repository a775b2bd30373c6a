"""``fastpercept serve``: a local web app over the library (Gradio; ``pip install 'fastpercept[ui]'``).

Three tabs: Stylize (upload or webcam, a gallery of styles, strength, color, size; a before/after
slider and the full-resolution file), Upscale (x4, x4-pixel, x8, a denoise control for real
photos; input and output side by side on a slider) and Video (a clip in, the stylized clip out
with its audio). The handlers here are plain functions over :mod:`fastpercept.api` (tested
without a browser); :func:`build_app` lays them out.

What a shared machine needs: the server binds 127.0.0.1 unless told otherwise and makes no public
link unless asked; one job runs at a time (others wait their turn, with their place shown; a
video whose page was closed stops at its next frames); uploads are size-limited and every tab
has a longest-side limit, so no job asks for more memory than the library's check allows; a bad
file is a message in the page naming it, never a dead server; models load once and stay warm;
uploads and results are deleted after an hour, and all of them when the server stops.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import Interrupted, UserError
from ..models import DEFAULT_DENOISE, DEFAULT_STYLE, DENOISE_SUFFIX, denoise_pair, load_model, read_card, shipped_dir

log = logging.getLogger(__name__)

DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 50
DEFAULT_MAX_SIZE = 2048  # longest side the app processes by default (px); 0 in the page: no limit
# Upscale and Video: the input's longest side by default. x4 makes a 2560 px output of it (x8: 5120
# px) whose canvases take about 0.2 GB (0.7 GB) beside the network's tiles, by the library's memory
# check; a 12 MP phone photo at full size would ask for 7 GB (26 GB).
DEFAULT_UPSCALE_MAX_SIZE = 640
DEFAULT_VIDEO_MAX_SIZE = 640  # every frame runs the network on the CPU: a 1080p clip would take many minutes
THUMBNAIL_SIZE = 160
RETENTION_S = 3600  # uploads and results are deleted this long after their job


@dataclass
class Catalogue:
    """The models the app offers: name -> model file, by task (shipped ones first, then ``--models DIR``)."""

    styles: dict[str, Path] = field(default_factory=dict)
    sr: dict[str, Path] = field(default_factory=dict)
    painters: dict[str, Path] = field(default_factory=dict)  # any-painting models (style from an upload)


def find_models(models_dir: str | Path | None = None) -> Catalogue:
    """Every shipped model, and every ``.safetensors`` model in ``models_dir`` (a user's own; a
    name clash with a shipped model keeps the shipped one and names the file by its path).

    A user's model is loaded once here, so one that cannot run (no card, weights that do not
    fit its architecture, NaN) is skipped with a warning line instead of stopping the server.
    """
    catalogue = Catalogue()
    folders = [shipped_dir()] + ([Path(models_dir)] if models_dir else [])
    if models_dir and not Path(models_dir).is_dir():
        raise UserError(f"--models {models_dir}: not a folder")
    for folder in folders:
        for path in sorted(folder.glob("*.safetensors")):
            try:
                task = read_card(path).get("task")
                if folder != shipped_dir() and task in ("style", "sr", "anystyle"):
                    load_model(path)
            except UserError as e:
                log.warning("skipping %s", e)
                continue
            shelf = {"style": catalogue.styles, "sr": catalogue.sr, "anystyle": catalogue.painters}.get(task)
            if shelf is None:
                continue
            shelf[path.stem if path.stem not in shelf else str(path)] = path
    if not catalogue.styles:
        raise UserError("no style models found")
    return catalogue


class JobCancelled(UserError):
    """A job stopped because the page that asked for it was closed."""


class Handlers:
    """What the page's buttons do: files in, files out, :class:`UserError` for anything bad.

    ``workdir`` receives the outputs (Gradio serves them from there), one folder per job;
    folders older than ``retention_s`` are deleted when the next job starts, and :meth:`close`
    deletes the whole work folder. Every call goes through the library's API with the app's
    device, precision and backend; the API keeps each model's runner warm after its first use.

    One job runs at a time, whoever calls: a job holds the slot until it returns, so a job that
    Gradio gave up on (its page closed) still keeps the next one waiting until it has stopped.
    """

    def __init__(self, catalogue: Catalogue, workdir: str | Path | None = None, backend: str = "auto",
                 device: str = "auto", precision: str = "auto", retention_s: float = RETENTION_S) -> None:
        self.catalogue = catalogue
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="fastpercept-serve-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.runtime = {"backend": backend, "device": device, "precision": precision}
        self.retention_s = retention_s
        self._one_job = threading.Lock()

    @contextlib.contextmanager
    def _job(self) -> Iterator[None]:
        """The job slot, held for the whole job; old job folders go first (no job is writing them)."""
        with self._one_job:
            self._remove_old_jobs()
            yield

    def _remove_old_jobs(self) -> None:
        cutoff = time.time() - self.retention_s
        for folder in self.workdir.iterdir():
            if folder.is_dir() and folder.name != "thumbnails" and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        """Delete the work folder: every upload's result and the thumbnails."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _out(self, name: str, suffix: str, folder: Path | None = None) -> Path:
        """A file of a job: in ``folder``, or a new folder (one per job: users' files never collide)."""
        if folder is None:
            folder = self.workdir / uuid.uuid4().hex[:12]
            folder.mkdir()
        return folder / f"{Path(name).stem}{suffix}"

    @staticmethod
    def _input(path: str | None, what: str = "an image") -> Path:
        if not path:
            raise UserError(f"upload {what} first")
        return Path(path)

    @staticmethod
    @contextlib.contextmanager
    def _named(src: Path) -> Iterator[None]:
        """Messages name an upload by its file name, not by the server's temporary path."""
        try:
            yield
        except JobCancelled:
            raise
        except UserError as e:
            raise UserError(str(e).replace(str(src), src.name)) from None

    @staticmethod
    def _max_size(value: float | None) -> int | None:
        return int(value) if value else None

    def _model(self, shelf: dict[str, Path], name: str, what: str) -> Path:
        if name not in shelf:
            raise UserError(f"unknown {what} {name!r} (have: {', '.join(shelf)})")
        return shelf[name]

    def stylize(self, image: str | None, style: str, strength: float = 1.0, preserve_color: bool = False,
                max_size: float | None = DEFAULT_MAX_SIZE, painting: str | None = None) -> tuple[tuple[str, str], str]:
        """``((input, output), output)``: the pair for the before/after slider and the file to download.

        ``painting``: an uploaded image whose style is used instead of ``style`` (the first
        any-painting model of the catalogue paints it; its longest side read at 512 px).
        """
        from ..api import stylize

        src = self._input(image)
        if painting:
            if not self.catalogue.painters:
                raise UserError("no any-painting model is installed; choose a style from the gallery")
            model, name = next(iter(self.catalogue.painters.values())), Path(painting).stem
            art = self._input(painting, "a painting")
        else:
            model, name, art = self._model(self.catalogue.styles, style, "style"), style, None
        with self._job(), self._named(src), self._named(art or src):
            out = stylize(src, model, strength=strength, preserve_color=preserve_color, style_image=art,
                          max_size=self._max_size(max_size), output=self._out(f"{src.stem}_{name}", ".png"),
                          **self.runtime)
        return (str(src), str(out)), str(out)

    def sr_choices(self) -> list[str]:
        """The SR models to pick from: a real-photo twin (x4-real) is reached by its model's denoise."""
        sr = self.catalogue.sr
        return [n for n in sr if not (n.endswith(DENOISE_SUFFIX) and n.removesuffix(DENOISE_SUFFIX) in sr)]

    def has_denoise(self, model: str | None) -> bool:
        """Whether ``model`` has a real-photo twin beside it (the denoise control applies)."""
        path = self.catalogue.sr.get(model or "")
        pair = denoise_pair(path) if path is not None else None
        return pair is not None and pair[0] == path

    def upscale(self, image: str | None, model: str = "x4", max_size: float | None = DEFAULT_UPSCALE_MAX_SIZE,
                denoise: float = DEFAULT_DENOISE) -> tuple[tuple[str, str], str]:
        """``((input enlarged by the same factor, output), output)``: side by side on the slider.

        ``denoise`` (0..1) blends the model toward its real-photo twin where it has one (x4 ->
        x4-real, as ``upscale --denoise``); other models ignore it.

        ``max_size``: the input's longest side (0 or None: as it is). The whole job stays inside
        the library's memory check: the input for the preview is decoded with the model's scale
        (so the check counts the output canvases), and the preview is 8 bits at the output's
        size (3 bytes a pixel, less than the output file's own share of the check).
        """
        from PIL import Image

        from ..api import upscale
        from ..architectures import arch_config
        from ..runtime.images import decode_image, to_pil, write_image

        src = self._input(image)
        path = self._model(self.catalogue.sr, model, "model")
        scale = arch_config(read_card(path)).scale
        with self._job(), self._named(src):
            # Decoded first: an image the job cannot hold is refused before the network runs.
            small = to_pil(decode_image(src, max_size=self._max_size(max_size), output_scale=scale).rgb)
            out = upscale(src, path, denoise=float(denoise) if self.has_denoise(model) else None,
                          max_size=self._max_size(max_size), output=self._out(f"{src.stem}_{model}", ".png"),
                          **self.runtime)
            with Image.open(out) as im:
                size = im.size
            # The slider compares like with like: the input enlarged with bicubic to the output's size.
            preview = small.resize(size, Image.Resampling.BICUBIC)
            bicubic = write_image(preview, self._out(f"{src.stem}_bicubic", ".png", out.parent))
        return (str(bicubic), str(out)), str(out)

    def stylize_video(self, video: str | None, style: str, strength: float = 1.0,
                      max_size: float | None = DEFAULT_VIDEO_MAX_SIZE,
                      progress: Callable[[int, int], Any] | None = None) -> str:
        """The stylized clip (H.264, audio kept, stable mode, every frame's longest side at most
        ``max_size``): its path. ``progress(done, total)`` follows the frames (total from the
        container's metadata; 0 where it does not say); it may raise :class:`JobCancelled` to stop
        the job (no output is left)."""
        from ..api import stylize

        src = self._input(video, "a video")
        model = self._model(self.catalogue.styles, style, "style")
        with self._job(), self._named(src):
            out = stylize(src, model, strength=strength, max_size=self._max_size(max_size),
                          output=self._out(f"{src.stem}_{style}", ".mp4"), progress=progress, **self.runtime)
        return str(out)

    def thumbnails(self, size: int = THUMBNAIL_SIZE) -> list[tuple[str, str]]:
        """``[(image, style name)]``: the bundled example photo in every style, made once per model.

        A style whose thumbnail cannot be made (a model that loads but does not run) is skipped
        with a warning line and leaves the catalogue: the server serves the rest.
        """
        from ..api import stylize

        example = shipped_dir().parent / "example.jpg"
        shots = []
        with self._one_job:
            for name, path in list(self.catalogue.styles.items()):
                out = self.workdir / "thumbnails" / f"{Path(name).stem}.jpg"
                if not out.exists():
                    out.parent.mkdir(exist_ok=True)
                    try:
                        stylize(example, path, max_size=size, output=out, **self.runtime)
                    except Exception as e:  # noqa: BLE001 - whatever a user's model does, the others are served
                        log.warning("skipping %s: it does not run (%s: %s)", path, type(e).__name__, e)
                        del self.catalogue.styles[name]
                        continue
                shots.append((str(out), name))
        if not shots:
            raise UserError("no style model runs")
        return shots


def _page_open() -> Callable[[], bool]:
    """A check that the page which asked for the running Gradio job is still open.

    Made in the job's thread (where Gradio's context names the job). Gradio marks the job's
    event not alive when its page's connection closes and drops it from its active jobs when
    the job is cancelled; the Python thread running it goes on either way, so the job asks.
    Outside a Gradio job (tests, the API), the page counts as open.
    """
    from gradio.context import LocalContext

    blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
    queue = getattr(blocks, "_queue", None)
    if queue is None or event_id is None or not hasattr(queue, "active_jobs"):
        return lambda: True

    def is_open() -> bool:
        return any(getattr(event, "_id", None) == event_id and getattr(event, "alive", True)
                   for job in list(queue.active_jobs) if job for event in job)

    return is_open


def _user_errors(fn: Callable) -> Callable:
    """``fn`` with UserError (and other ValueErrors from bad input) shown in the page as a message."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UserError, ValueError) as e:
            raise gr.Error(str(e), print_exception=False) from None

    return wrapped


def _upload_image(**kwargs):
    """Gradio's Image component (``type="filepath"``), but an upload reaches the handler as the
    file it is.

    Gradio's own preprocessing opens the file with Pillow (a non-image, an empty file or a large
    image then fails with Pillow's message and the server's temporary path) and turns every
    mode into RGB (alpha and 16 bits lost). The library reads the file instead, and its
    messages name the upload by its file name. (The component's own method is replaced: a
    subclass would make Gradio write a type stub next to this module.)
    """
    import gradio as gr

    component = gr.Image(type="filepath", image_mode=None, **kwargs)
    gradio_preprocess = component.preprocess

    def preprocess(payload):
        if payload is None or not payload.path or (payload.url or "").startswith("data:"):
            return gradio_preprocess(payload)  # nothing uploaded, or a webcam shot sent inline
        return str(payload.path)

    component.preprocess = preprocess
    return component


# The style gallery shows every style at once: four to a row, rows as needed, no scroll bar, the
# whole name under each thumbnail (Gradio cuts a caption at 80% of the thumbnail's width).
PAGE_CSS = """
#style-gallery .grid-wrap { overflow: visible; min-height: 0; max-height: none; }
#style-gallery .caption-label { max-width: calc(100% - 2 * var(--block-label-margin)); font-size: 11px; }
"""


def build_app(handlers: Handlers):
    """The Gradio page: Stylize, Upscale and Video tabs over ``handlers``."""
    import gradio as gr

    thumbs = handlers.thumbnails()
    styles = list(handlers.catalogue.styles)
    default_style = DEFAULT_STYLE if DEFAULT_STYLE in styles else styles[0]

    def pick_style(evt: gr.SelectData) -> str:
        return styles[evt.index]

    pick_style.__annotations__["evt"] = gr.SelectData  # Gradio reads the real class (this module's are strings)

    def video_job(video, style, strength, max_size, progress=gr.Progress()):
        page_open = _page_open()

        def frames(done: int, total: int) -> None:
            if not page_open():
                raise JobCancelled(f"{Path(video).name}: stopped after {done} frames: its page was closed")
            progress((done, total) if total else None, desc=f"{done} frames", unit="frames")

        try:
            return handlers.stylize_video(video, style, strength, max_size, progress=frames)
        except JobCancelled as e:
            log.warning("%s", e)
            raise

    def size_field(value: int, what: str):
        return gr.Number(value=value, precision=0, minimum=0, label=f"Longest side of the {what} (px, 0: full size)")

    with gr.Blocks(title="fastpercept", delete_cache=(RETENTION_S // 4, RETENTION_S)) as app:
        gr.Markdown("# fastpercept\nFast neural style transfer and perceptual super-resolution "
                    "(Johnson et al., 2016), on this machine.")
        with gr.Tab("Stylize", id="stylize"):
            with gr.Row():
                with gr.Column():
                    image = _upload_image(sources=["upload", "webcam", "clipboard"], label="Photo",
                                          elem_id="stylize-input")
                    rows = -(-len(thumbs) // 4)
                    gallery = gr.Gallery(value=thumbs, label="Style (click one)", columns=4, rows=rows,
                                         object_fit="cover", allow_preview=False, buttons=[], elem_id="style-gallery")
                    style = gr.Dropdown(styles, value=default_style, label="Style", elem_id="style-name")
                    painting = _upload_image(sources=["upload", "clipboard"], elem_id="style-painting",
                                             label="Or your own painting as the style (any image; clear it to use "
                                                   "the gallery)", visible=bool(handlers.catalogue.painters))
                    strength = gr.Slider(0, 1, value=1, step=0.05, label="Strength")
                    color = gr.Checkbox(label="Preserve the photo's colors")
                    size = gr.Number(value=DEFAULT_MAX_SIZE, precision=0, minimum=0,
                                     label="Longest side (px, 0: full size; large images run in tiles)")
                    run = gr.Button("Stylize", variant="primary", elem_id="stylize-run")
                with gr.Column():
                    result = gr.ImageSlider(label="Before / after", type="filepath", elem_id="stylize-result")
                    download = gr.File(label="Full resolution", elem_id="stylize-file")
            gallery.select(pick_style, None, style)
            run.click(_user_errors(handlers.stylize), [image, style, strength, color, size, painting],
                      [result, download], api_name="stylize")
        with gr.Tab("Upscale", id="upscale"):
            with gr.Row():
                with gr.Column():
                    lr = _upload_image(sources=["upload", "clipboard"], label="Small image", elem_id="upscale-input")
                    sr_names = handlers.sr_choices()
                    first = "x4" if "x4" in sr_names else next(iter(sr_names), None)
                    model = gr.Radio(sr_names, value=first,
                                     label="Model (x4: perceptual loss; x4-pixel: per-pixel loss)")
                    denoise = gr.Slider(0, 1, value=DEFAULT_DENOISE, step=0.05, interactive=handlers.has_denoise(first),
                                        label="Denoise for real photos (JPEG, noise, blur): 0 keeps every detail, "
                                              "1 cleans the most", elem_id="upscale-denoise")
                    sr_size = size_field(DEFAULT_UPSCALE_MAX_SIZE, "input")
                    run_sr = gr.Button("Upscale", variant="primary", elem_id="upscale-run")
                with gr.Column():
                    sr_result = gr.ImageSlider(label="Bicubic / network (drag to compare)", type="filepath",
                                               elem_id="upscale-result")
                    sr_file = gr.File(label="Full resolution")
            model.change(lambda m: gr.update(interactive=handlers.has_denoise(m)), model, denoise)
            run_sr.click(_user_errors(handlers.upscale), [lr, model, sr_size, denoise], [sr_result, sr_file],
                         api_name="upscale")
        with gr.Tab("Video", id="video"):
            with gr.Row():
                with gr.Column():
                    clip = gr.Video(sources=["upload"], label="Clip", elem_id="video-input")
                    v_style = gr.Dropdown(styles, value=default_style, label="Style")
                    v_strength = gr.Slider(0, 1, value=1, step=0.05, label="Strength")
                    v_size = size_field(DEFAULT_VIDEO_MAX_SIZE, "frames")
                    run_v = gr.Button("Stylize the clip", variant="primary", elem_id="video-run")
                with gr.Column():
                    v_out = gr.Video(label="Stylized (audio kept)", elem_id="video-result")
            run_v.click(_user_errors(video_job), [clip, v_style, v_strength, v_size], v_out, api_name="stylize_video")
    return app


def check_port(host: str, port: int) -> None:
    """UserError unless this process can listen on ``host:port`` now (checked before the models load)."""
    if not 1 <= port <= 65535:
        raise UserError(f"port {port}: not a TCP port (1 to 65535)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise UserError(f"{host}: not an address of this machine ({e.strerror})") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server's own socket: TIME_WAIT is no conflict
        try:
            s.bind(address)
        except OSError as e:
            busy = e.errno == errno.EADDRINUSE
            raise UserError(f"{host}:{port}: " + ("in use by another server; choose another port" if busy else
                                                  f"cannot listen there ({e.strerror})")) from None


@contextlib.contextmanager
def _sigterm_stops_the_server() -> Iterator[None]:
    """SIGTERM as an exception in the main thread, so the server closes and the work folder goes
    (Python's default ends the process on the spot). Left alone where a handler is set already."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Interrupted("the server stopped; its uploads and results were deleted", signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, models_dir: str | None = None, share: bool = False,
          max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB, queue_size: int = 32, backend: str = "auto",
          device: str = "auto", precision: str = "auto") -> None:
    """Start the app and block. One job runs at a time; up to ``queue_size`` wait. The work
    folder (results) and Gradio's copies of uploads and results are deleted when it stops."""
    check_port(host, port)
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError("the web app needs Gradio: pip install 'fastpercept[ui]'") from None
    handlers = Handlers(find_models(models_dir), backend=backend, device=device, precision=precision)
    app = None
    try:
        with _sigterm_stops_the_server():
            app = build_app(handlers)
            app.queue(default_concurrency_limit=1, max_size=queue_size)
            log.info("fastpercept serve: http://%s:%d (%d styles, %d SR models)", host, port,
                     len(handlers.catalogue.styles), len(handlers.catalogue.sr))
            app.launch(server_name=host, server_port=port, share=share, max_file_size=f"{max_upload_mb}mb",
                       show_error=True, quiet=True, allowed_paths=[str(handlers.workdir)], css=PAGE_CSS)
    finally:
        if app is not None:
            app.close()  # Gradio deletes its copies of uploads and results as it shuts down
        handlers.close()
