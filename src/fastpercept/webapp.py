"""``fastpercept serve``: a local web app over the library (Gradio; ``pip install 'fastpercept[ui]'``).

Three tabs: Stylize (upload or webcam, a gallery of styles, strength, color, size; a before/after
slider and the full-resolution file), Upscale (x4, x4-pixel, x8; input and output side by side on
a slider) and Video (a clip in, the stylized clip out with its audio). The handlers here are plain
functions over :mod:`fastpercept.api` (tested without a browser); :func:`build_app` lays them out.

What a shared machine needs: the server binds 127.0.0.1 unless told otherwise and makes no public
link unless asked; one queue runs one heavy job at a time (others wait their turn, with their
place shown); uploads are size-limited; a bad file is a message in the page, never a dead
server; models load once and stay warm.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import UserError
from .models import DEFAULT_STYLE, read_card, shipped_dir

log = logging.getLogger(__name__)

DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 50
DEFAULT_MAX_SIZE = 2048  # longest side the app processes by default (px); 0 in the page: no limit
THUMBNAIL_SIZE = 160


@dataclass
class Catalogue:
    """The models the app offers: name -> model file, by task (shipped ones first, then ``--models DIR``)."""

    styles: dict[str, Path] = field(default_factory=dict)
    sr: dict[str, Path] = field(default_factory=dict)


def find_models(models_dir: str | Path | None = None) -> Catalogue:
    """Every shipped model, and every ``.safetensors`` model in ``models_dir`` (a user's own; a
    name clash with a shipped model keeps the shipped one and names the file by its path)."""
    catalogue = Catalogue()
    folders = [shipped_dir()] + ([Path(models_dir)] if models_dir else [])
    if models_dir and not Path(models_dir).is_dir():
        raise UserError(f"--models {models_dir}: not a folder")
    for folder in folders:
        for path in sorted(folder.glob("*.safetensors")):
            try:
                task = read_card(path).get("task")
            except UserError as e:
                log.warning("skipping %s", e)
                continue
            shelf = catalogue.styles if task == "style" else catalogue.sr if task == "sr" else None
            if shelf is None:
                continue
            shelf[path.stem if path.stem not in shelf else str(path)] = path
    if not catalogue.styles:
        raise UserError("no style models found")
    return catalogue


class Handlers:
    """What the page's buttons do: files in, files out, :class:`UserError` for anything bad.

    ``workdir`` receives the outputs (Gradio serves them from there). Every call goes through the
    library's API with the app's device, precision and backend; the API keeps each model's
    runner warm after its first use.
    """

    def __init__(self, catalogue: Catalogue, workdir: str | Path | None = None, backend: str = "auto",
                 device: str = "auto", precision: str = "auto") -> None:
        self.catalogue = catalogue
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="fastpercept-serve-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.runtime = {"backend": backend, "device": device, "precision": precision}

    def _out(self, name: str, suffix: str) -> Path:
        folder = self.workdir / uuid.uuid4().hex[:12]  # one folder per job: concurrent users never collide
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
                max_size: float | None = DEFAULT_MAX_SIZE) -> tuple[tuple[str, str], str]:
        """``((input, output), output)``: the pair for the before/after slider and the file to download."""
        from .api import stylize

        src = self._input(image)
        model = self._model(self.catalogue.styles, style, "style")
        with self._named(src):
            out = stylize(src, model, strength=strength, preserve_color=preserve_color,
                          max_size=self._max_size(max_size), output=self._out(f"{src.stem}_{style}", ".png"),
                          **self.runtime)
        return (str(src), str(out)), str(out)

    def upscale(self, image: str | None, model: str = "x4", max_size: float | None = None
                ) -> tuple[tuple[str, str], str]:
        """``((input enlarged by the same factor, output), output)``: side by side on the slider."""
        from PIL import Image

        from .api import upscale
        from .images import decode_image, to_pil, write_image

        src = self._input(image)
        path = self._model(self.catalogue.sr, model, "model")
        with self._named(src):
            out = upscale(src, path, max_size=self._max_size(max_size),
                          output=self._out(f"{src.stem}_{model}", ".png"), **self.runtime)
            x = decode_image(src, max_size=self._max_size(max_size)).rgb
        with Image.open(out) as im:
            size = im.size
        # The slider compares like with like: the input enlarged with bicubic to the output's size,
        # in 8 bits (3 bytes per output pixel, not a float canvas).
        preview = to_pil(x).resize(size, Image.Resampling.BICUBIC)
        bicubic = write_image(preview, self._out(f"{src.stem}_bicubic", ".png"))
        return (str(bicubic), str(out)), str(out)

    def stylize_video(self, video: str | None, style: str, strength: float = 1.0,
                      progress: Callable[[int, int], Any] | None = None) -> str:
        """The stylized clip (H.264, audio kept, stable mode): its path. ``progress(done, total)``
        follows the frames (total from the container's metadata; 0 where it does not say)."""
        from .api import stylize

        src = self._input(video, "a video")
        model = self._model(self.catalogue.styles, style, "style")
        with self._named(src):
            out = stylize(src, model, strength=strength, output=self._out(f"{src.stem}_{style}", ".mp4"),
                          progress=progress, **self.runtime)
        return str(out)

    def thumbnails(self, size: int = THUMBNAIL_SIZE) -> list[tuple[str, str]]:
        """``[(image, style name)]``: the bundled example photo in every style, made once per model."""
        from .api import stylize

        example = shipped_dir().parent / "example.jpg"
        shots = []
        for name, path in self.catalogue.styles.items():
            out = self.workdir / "thumbnails" / f"{Path(name).stem}.jpg"
            if not out.exists():
                out.parent.mkdir(exist_ok=True)
                stylize(example, path, max_size=size, output=out, **self.runtime)
            shots.append((str(out), name))
        return shots


def _user_errors(fn: Callable) -> Callable:
    """``fn`` with UserError (and other ValueErrors from bad input) shown in the page as a message."""
    import functools

    import gradio as gr

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UserError, ValueError) as e:
            raise gr.Error(str(e), print_exception=False) from None

    return wrapped


def build_app(handlers: Handlers):
    """The Gradio page: Stylize, Upscale and Video tabs over ``handlers``."""
    import gradio as gr

    styles = list(handlers.catalogue.styles)
    default_style = DEFAULT_STYLE if DEFAULT_STYLE in styles else styles[0]
    thumbs = handlers.thumbnails()

    def pick_style(evt: gr.SelectData) -> str:
        return styles[evt.index]

    pick_style.__annotations__["evt"] = gr.SelectData  # Gradio reads the real class (this module's are strings)

    def video_job(video, style, strength, progress=gr.Progress()):
        def frames(done: int, total: int) -> None:
            progress((done, total) if total else None, desc=f"{done} frames", unit="frames")

        return handlers.stylize_video(video, style, strength, progress=frames)

    with gr.Blocks(title="fastpercept") as app:
        gr.Markdown("# fastpercept\nFast neural style transfer and perceptual super-resolution "
                    "(Johnson et al., 2016), on this machine.")
        with gr.Tab("Stylize", id="stylize"):
            with gr.Row():
                with gr.Column():
                    image = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"], label="Photo",
                                     elem_id="stylize-input")
                    gallery = gr.Gallery(value=thumbs, label="Style (click one)", columns=6, height=170,
                                         allow_preview=False, elem_id="style-gallery")
                    style = gr.Dropdown(styles, value=default_style, label="Style", elem_id="style-name")
                    strength = gr.Slider(0, 1, value=1, step=0.05, label="Strength")
                    color = gr.Checkbox(label="Preserve the photo's colors")
                    size = gr.Number(value=DEFAULT_MAX_SIZE, precision=0, minimum=0,
                                     label="Longest side (px, 0: full size; large images run in tiles)")
                    run = gr.Button("Stylize", variant="primary", elem_id="stylize-run")
                with gr.Column():
                    result = gr.ImageSlider(label="Before / after", type="filepath", elem_id="stylize-result")
                    download = gr.File(label="Full resolution", elem_id="stylize-file")
            gallery.select(pick_style, None, style)
            run.click(_user_errors(handlers.stylize), [image, style, strength, color, size], [result, download],
                      api_name="stylize")
        with gr.Tab("Upscale", id="upscale"):
            with gr.Row():
                with gr.Column():
                    lr = gr.Image(type="filepath", sources=["upload", "clipboard"], label="Small image",
                                  elem_id="upscale-input")
                    sr_names = list(handlers.catalogue.sr)
                    model = gr.Radio(sr_names, value="x4" if "x4" in sr_names else next(iter(sr_names), None),
                                     label="Model (x4: perceptual loss; x4-pixel: per-pixel loss)")
                    run_sr = gr.Button("Upscale", variant="primary", elem_id="upscale-run")
                with gr.Column():
                    sr_result = gr.ImageSlider(label="Bicubic / network (drag to compare)", type="filepath",
                                               elem_id="upscale-result")
                    sr_file = gr.File(label="Full resolution")
            run_sr.click(_user_errors(handlers.upscale), [lr, model], [sr_result, sr_file], api_name="upscale")
        with gr.Tab("Video", id="video"):
            with gr.Row():
                with gr.Column():
                    clip = gr.Video(sources=["upload"], label="Clip", elem_id="video-input")
                    v_style = gr.Dropdown(styles, value=default_style, label="Style")
                    v_strength = gr.Slider(0, 1, value=1, step=0.05, label="Strength")
                    run_v = gr.Button("Stylize the clip", variant="primary", elem_id="video-run")
                with gr.Column():
                    v_out = gr.Video(label="Stylized (audio kept)", elem_id="video-result")
            run_v.click(_user_errors(video_job), [clip, v_style, v_strength], v_out, api_name="stylize_video")
    return app


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, models_dir: str | None = None, share: bool = False,
          max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB, queue_size: int = 32, backend: str = "auto",
          device: str = "auto", precision: str = "auto") -> None:
    """Start the app and block. One job runs at a time; up to ``queue_size`` wait."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError("the web app needs Gradio: pip install 'fastpercept[ui]'") from None
    handlers = Handlers(find_models(models_dir), backend=backend, device=device, precision=precision)
    app = build_app(handlers)
    app.queue(default_concurrency_limit=1, max_size=queue_size)
    log.info("fastpercept serve: http://%s:%d (%d styles, %d SR models)", host, port, len(handlers.catalogue.styles),
             len(handlers.catalogue.sr))
    app.launch(server_name=host, server_port=port, share=share, max_file_size=f"{max_upload_mb}mb",
               show_error=True, quiet=True, allowed_paths=[str(handlers.workdir)])
