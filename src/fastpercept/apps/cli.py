"""Command line: ``fastpercept <command>`` (a thin layer over the library).

Exit codes: 0 success; 2 bad usage or bad input (one line on stderr, no traceback); 1 an
internal error. Batches go on past a bad file, report it, and exit 2 at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from .. import __version__
from .cli_args import (VGG_HELP, OneLineParser, add_backend, add_objective, add_runtime, add_training,
                       ints as _ints, positive, unit as _unit)
from ..errors import Interrupted, UserError, as_flags

log = logging.getLogger("fastpercept")

def _add_images(p: argparse.ArgumentParser) -> None:
    """What `stylize` and `upscale` share: inputs, output, input size, tiles, device."""
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image or video files, or folders (read recursively)")
    p.add_argument("-o", "--output", default=None,
                   help="output file with an image (or, for a video, video) suffix, or a folder (existing, or "
                        "ending in /); default: beside each input as NAME-MODEL.EXT")
    p.add_argument("--max-size", type=positive, default=None, help="downscale inputs to this longest side first")
    p.add_argument("--tile", type=positive, default=None, help="process in tiles of this many input pixels")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files that already exist where outputs go (default: report and skip them)")
    add_backend(p, "inference runtime (auto: the fastest installed: OpenVINO on the CPU, PyTorch on CUDA; torch and "
                   "compile need fastpercept[train], onnxruntime fastpercept[onnx])")
    p.add_argument("--crf", type=int, default=None, help="videos: the encoder's constant quality (default 18)")
    p.add_argument("--codec", default=None, help="videos: the encoder (default libx264; libvpx-vp9 for .webm)")
    p.add_argument("--frames", action="store_true",
                   help="one clip, frames in or out: INPUT is a video or a folder of frames (image files in name "
                        "order), -o a video file or a folder that receives PNG frames 000001.png, ...")
    p.add_argument("--fps", type=float, default=None,
                   help="--frames: the frame rate of a folder of frames (default 25)")
    add_runtime(p)


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


# Commands whose flags need the training and evaluation modules (and PyTorch) to be described,
# with their one line of help.
_HEAVY_COMMANDS = {"train": "train a model of one of the tasks",
                   "optimize": "the Gatys et al. optimization baseline on the same objective",
                   "eval": "measure a model"}


def _add_heavy_commands(sub) -> None:
    """``train``, ``optimize`` and ``eval`` with all their flags."""
    from ..training.optimize import DEFAULT_ITERS, DEFAULT_SIZE
    from ..training.tasks import get_task, task_names
    from ..training.tasks.sr import SR_SCALES

    train = sub.add_parser("train", help=_HEAVY_COMMANDS["train"])
    tsub = train.add_subparsers(dest="task", required=True)
    for name in task_names():
        task = get_task(name)
        p = tsub.add_parser(name, help=task.summary)
        add_training(p, task.train_config)
        task.add_arguments(p)
        p.set_defaults(func=cmd_train, train_task=task)

    p = sub.add_parser("optimize", help=_HEAVY_COMMANDS["optimize"])
    p.set_defaults(func=cmd_optimize)
    p.add_argument("--content", required=True, help="content image")
    p.add_argument("--style", required=True, help="style image")
    p.add_argument("-o", "--output", required=True, help="output image")
    p.add_argument("--iters", type=positive, default=DEFAULT_ITERS,
                   help=f"optimizer iterations (default {DEFAULT_ITERS})")
    p.add_argument("--optimizer", default="lbfgs", choices=["lbfgs", "adam"], help="default: lbfgs")
    p.add_argument("--init", default="noise", choices=["noise", "content"],
                   help="start from white noise (default, as in the paper) or from the content image")
    p.add_argument("--size", type=positive, default=DEFAULT_SIZE, help="longest side of the content image")
    p.add_argument("--lr", type=float, default=None, help="Adam step size (default 0.05) or L-BFGS lr (default 1)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    add_objective(p)
    add_runtime(p)

    ev = sub.add_parser("eval", help=_HEAVY_COMMANDS["eval"])
    esub = ev.add_subparsers(dest="task", required=True)
    p = esub.add_parser("style", help="objective terms of a style model's outputs (vs optimization)")
    p.set_defaults(func=cmd_eval_style)
    p.add_argument("--model", required=True, help="shipped style name or model file")
    p.add_argument("--content", required=True, help="folder of content photos")
    p.add_argument("--size", type=positive, default=256,
                   help="longest side the photos are reduced to (with --crop: the square's side; default 256)")
    p.add_argument("--crop", action="store_true",
                   help="score each photo's center SIZE x SIZE square, shorter side resized to SIZE as in training "
                        "(the paper's Figure 5 used square images)")
    p.add_argument("--vs-optimize", type=_ints, default=[], metavar="N,N,...",
                   help="L-BFGS iteration counts to compare with, e.g. 50,100 (one run per photo, from noise)")
    _add_json(p)
    p.add_argument("--vgg-weights", default=None, help=VGG_HELP)
    p.add_argument("--style-image", default=None,
                   help="the model's style image (default: its card's file name, looked up in the usual places)")
    add_runtime(p)

    p = esub.add_parser("sr", help="PSNR/SSIM (Y) and LPIPS of an SR model or bicubic on a benchmark folder")
    p.set_defaults(func=cmd_eval_sr)
    p.add_argument("--model", required=True, help="shipped SR model name, model file, or 'bicubic'")
    p.add_argument("--data", required=True, help="benchmark folder: DIR/HR/NAME.png with DIR/LR_x{s}/NAME.png "
                                                 "(no LR_x{s} folder: every LR is made from its HR with MATLAB "
                                                 "bicubic; with one, every HR needs its LR file)")
    p.add_argument("--scale", type=int, default=None, choices=list(SR_SCALES),
                   help="required with --model bicubic; a model's scale comes from its card")
    p.add_argument("--tile", type=positive, default=None, help="run the network in tiles of this many pixels")
    p.add_argument("--lpips-net", default="alex", choices=["alex", "vgg"], help="LPIPS backbone (default alex)")
    p.add_argument("--degradation", default="clean", choices=["clean", "real"],
                   help="real: make each LR from its HR with the real-photo degradations of `train sr "
                        "--degradation real` at --seed (blur, noise, resizing, JPEG; the LR files are unused)")
    p.add_argument("--jpeg", type=int, default=None, metavar="Q",
                   help="compress each clean LR as JPEG at quality Q (1-100) before upscaling")
    p.add_argument("--seed", type=int, default=0, help="--degradation real: the degradations' seed (default 0)")
    _add_json(p)
    add_runtime(p)


def _needs_training(command: str) -> Callable[[argparse.Namespace], int]:
    def refuse(a: argparse.Namespace) -> int:
        from ..models import require_torch

        require_torch(f"`{command}`")
        return 1  # not reached: a stub only runs where PyTorch is missing

    return refuse


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``command`` (the subcommand about to run) the flags of the other
    heavy commands are left out: ``stylize`` then never imports the training modules (nor
    PyTorch, where the lean start applies)."""
    parser = OneLineParser(prog="fastpercept", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"fastpercept {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug-level log messages")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stylize", help="stylize images or folders with a trained style")
    p.set_defaults(func=cmd_stylize)
    _add_images(p)
    p.add_argument("--style", default=None,
                   help="a style by name (a shipped model, else one in $FASTPERCEPT_MODELS; never a file or folder "
                        "of that name here) or a model file (a path: ending in .safetensors or holding a /); default "
                        "mosaic; a multi-style model as MODEL@style or a blend MODEL@a:0.7,b:0.3")
    p.add_argument("--style-image", default=None, metavar="PAINTING",
                   help="any painting (an image file) as the style, without training: the any-painting network "
                        "(--style then names another such model; default anystyle)")
    p.add_argument("--style-size", type=positive, default=512, metavar="PX",
                   help="--style-image: the painting's longest side as read (never enlarged; larger: finer "
                        "strokes; default 512)")
    p.add_argument("--strength", type=_unit, default=1.0, help="0 = input, 1 = full style")
    p.add_argument("--preserve-color", action="store_true", help="keep the input's colors")
    p.add_argument("--stable", action=argparse.BooleanOptionalAction, default=True,
                   help="videos: frames calmed along their motion before the network and settled after "
                        "it, no flicker (default); --no-stable stylizes each frame on its own")

    p = sub.add_parser("upscale", help="super-resolve images x4 or x8")
    p.set_defaults(func=cmd_upscale)
    _add_images(p)
    p.add_argument("--model", default="x4", help="an SR model by name (shipped, else in $FASTPERCEPT_MODELS; never a "
                                                 "file or folder of that name here) or a model file (a path: ending "
                                                 "in .safetensors or holding a /); default x4")
    p.add_argument("--denoise", type=_unit, default=None, metavar="0..1",
                   help="for real photos (JPEG, noise, blur): 0 is the model, 1 its twin trained on real-photo "
                        "degradations (x4 -> x4-real), between a blend of their weights. Default: for a model "
                        "with a twin (x4), the blend that measured best on real photos, "
                        "else 0. Use 0 for clean inputs made with bicubic (benchmarks)")
    p.add_argument("--match-colors", action="store_true",
                   help="match the output's color histograms to the input's (the paper's post-processing)")

    if (command is not None and command not in _HEAVY_COMMANDS) or importlib.util.find_spec("torch") is None:
        for name, summary in _HEAVY_COMMANDS.items():
            stub = sub.add_parser(name, help=f"{summary} (fastpercept[train])", add_help=False, prefix_chars="\0")
            stub.add_argument("rest", nargs=argparse.REMAINDER)
            stub.set_defaults(func=_needs_training(name))
    else:
        _add_heavy_commands(sub)

    p = sub.add_parser("export", help="export a model to ONNX or OpenVINO (verified against PyTorch)")
    p.set_defaults(func=cmd_export)
    p.add_argument("model", help="shipped model name or model file")
    p.add_argument("--format", required=True, choices=["onnx", "openvino"], help="onnx (FILE.onnx) or openvino "
                   "(FILE.xml + FILE.bin); dynamic batch, height and width; the card in the metadata")
    p.add_argument("-o", "--output", required=True, help="the file to write")

    p = sub.add_parser("serve", help="a local web app: stylize, upscale, video (pip install 'fastpercept[ui]')")
    p.set_defaults(func=cmd_serve)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    p.add_argument("--port", type=positive, default=7860, help="default 7860")
    p.add_argument("--models", default=None, metavar="DIR", help="also offer the .safetensors models in DIR")
    p.add_argument("--share", action="store_true", help="ask Gradio for a public share link (off by default)")
    p.add_argument("--max-upload-mb", type=positive, default=50, help="largest upload accepted (default 50 MB)")
    p.add_argument("--queue-size", type=positive, default=32,
                   help="jobs that may wait while one runs (default 32; more are turned away)")
    add_backend(p, "inference runtime (as for stylize)")
    add_runtime(p)

    p = sub.add_parser("models", help="list shipped models")
    p.set_defaults(func=cmd_models)
    _add_json(p)
    p = sub.add_parser("info", help="show a model's card")
    p.set_defaults(func=cmd_info)
    p.add_argument("model", help="shipped model name or model file")
    _add_json(p)
    p = sub.add_parser("weights", help="where the VGG-16 and LPIPS weights come from (fetches them)")
    p.set_defaults(func=cmd_weights)
    p.add_argument("--vgg-weights", default=None, help=VGG_HELP)
    _add_json(p)
    return parser


def _print_json(doc) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False) + "\n")


def _batch(pairs: Sequence[tuple[Path, Path]], work: Callable[[Path, Path], None], what: str,
           failed: list[tuple[Path, str]]) -> int:
    """Run ``work`` on every (input, output) pair; report bad files and go on (``failed`` holds the
    inputs already refused while planning, reported there)."""
    from ..runtime.batch import each_item

    total = len(pairs) + len(failed)
    quiet = not sys.stderr.isatty() or total < 2
    for (_, dst), _ in each_item(pairs, lambda pair: work(*pair), failed, desc=what, progress=not quiet):
        print(dst)
    if failed and total > 1:
        print(f"fastpercept: {len(failed)} of {total} inputs failed", file=sys.stderr)
    return 2 if failed else 0


def _planned(a: argparse.Namespace, suffix: str, default_ext: str | None = None
             ) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """``(pairs, failed)`` for stylize/upscale; planning problems are printed now, the batch goes on."""
    from ..runtime.listing import plan_outputs

    failed: list[tuple[Path, str]] = []
    pairs = plan_outputs(a.inputs, a.output, suffix=suffix, default_ext=default_ext, failed=failed,
                         overwrite=a.overwrite)
    for _, message in failed:
        print(f"fastpercept: error: {message}", file=sys.stderr)
    return pairs, failed


def _fps(a: argparse.Namespace) -> dict:
    """The ``fps=`` option of a clip from a folder of frames; UserError outside the rates we write."""
    from ..runtime.video import MAX_FPS, MIN_FPS

    if a.fps is None:
        return {}
    if not MIN_FPS <= a.fps <= MAX_FPS:  # also refuses nan
        raise UserError(f"--fps {a.fps:g}: give a frame rate from {MIN_FPS:g} to {MAX_FPS:g}")
    return {"fps": a.fps}


def _one_clip(a: argparse.Namespace, full: Callable[[Path, Path], object]) -> int:
    """``--frames``: one clip (a video or a folder of frames) to a video or a folder of frames."""
    if len(a.inputs) != 1 or not a.output:
        raise UserError("--frames takes one input (a video or a folder of frames) and -o (a video file or a folder)")
    src = Path(a.inputs[0])
    if not src.exists():
        raise UserError(f"{src}: no such file or folder")
    print(full(src, Path(a.output)))
    return 0


def cmd_stylize(a: argparse.Namespace) -> int:
    from ..models import DEFAULT_ANYSTYLE, DEFAULT_STYLE, read_card, resolve_model_path

    if a.style is not None and not a.style.strip():
        raise UserError("--style is empty; give a style name (see `fastpercept models`) or a model file")
    painting = a.style_image
    style = a.style or (DEFAULT_ANYSTYLE if painting else DEFAULT_STYLE)
    _fps(a)
    # Checked before the outputs are planned: a bad --style (or painting) is one error, not one per
    # input, and the wrong kind of model is not taken for an output that exists.
    task = read_card(resolve_model_path(style)).get("task")
    if task == "sr":
        raise UserError(f"{style}: a super-resolution model, not a style model; upscale with it, or see "
                        "`fastpercept models`")
    if painting:
        from ..api import read_painting

        if task != "anystyle":
            raise UserError(f"--style-image takes an any-painting model as --style, not {style} (a {task} model)")
        # A painting that cannot be read: one line, nothing written. The decoded painting is
        # cached, so the inputs' calls below do not decode it again.
        read_painting(painting, a.style_size)
    elif task == "anystyle":
        raise UserError(f"{style}: an any-painting model; give the painting as --style-image PAINTING")

    def full(s: Path, d: Path) -> object:
        from ..api import stylize

        return stylize(s, style, strength=a.strength, preserve_color=a.preserve_color, tile=a.tile,
                       max_size=a.max_size, device=a.device, precision=a.precision, output=d, backend=a.backend,
                       crf=a.crf, codec=a.codec, stable=a.stable, progress=sys.stderr.isatty() or None,
                       style_image=painting, style_size=a.style_size, **_fps(a))

    if a.frames:
        return _one_clip(a, full)
    pairs, failed = _planned(a, suffix=Path(str(painting or style)).stem)
    return _batch(pairs, full, "stylize", failed)


def cmd_upscale(a: argparse.Namespace) -> int:
    from ..models import read_card, resolve_model_path

    _fps(a)
    task = read_card(resolve_model_path(a.model)).get("task")  # as for stylize: before the outputs are planned
    if task != "sr":
        raise UserError(f"{a.model}: a {task or 'non-SR'} model, not a super-resolution model; stylize with it, "
                        "or see `fastpercept models`")

    def full(s: Path, d: Path) -> object:
        from ..api import upscale

        return upscale(s, a.model, denoise=a.denoise, match_colors=a.match_colors, tile=a.tile, max_size=a.max_size,
                       device=a.device, precision=a.precision, output=d, backend=a.backend, crf=a.crf, codec=a.codec,
                       progress=sys.stderr.isatty() or None, **_fps(a))

    if a.frames:
        return _one_clip(a, full)
    pairs, failed = _planned(a, suffix=Path(str(a.model)).stem, default_ext=".png")
    return _batch(pairs, full, "upscale", failed)


def _config(cls, a: argparse.Namespace):
    """``cls`` (a config dataclass) from the parsed flags of the same names.

    A flag left at None takes the config's default, so each default lives in one place (the
    config or the network config it derives from), not again in the parser.
    """
    import dataclasses

    values = {f.name: getattr(a, f.name) for f in dataclasses.fields(cls) if getattr(a, f.name, None) is not None}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})  # lists: tuple fields


def cmd_train(a: argparse.Namespace) -> int:
    task = a.train_task
    task.train(_config(task.train_config, a))
    print(a.output)
    return 0


def cmd_serve(a: argparse.Namespace) -> int:
    from .webapp import serve

    serve(host=a.host, port=a.port, models_dir=a.models, share=a.share, max_upload_mb=a.max_upload_mb,
          queue_size=a.queue_size, backend=a.backend, device=a.device, precision=a.precision)
    return 0


def cmd_models(a: argparse.Namespace) -> int:
    from ..architectures import architecture
    from ..models import shipped_models

    models = shipped_models()
    if a.json:
        _print_json(models)
        return 0
    if not models:
        print("no models shipped")
    for m in models:
        c = m["card"]
        detail = architecture(m["task"]).describe(c)
        print(f"{m['name']:<20} {m['task']:<6} {detail:<28} {c.get('iterations', '?')} iterations")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from ..runtime.export import export_model

    path, diff = export_model(a.model, a.format, a.output)
    print(f"max |{a.format} - pytorch| = {diff:.3g} (fp32, a 93x67 test image)", file=sys.stderr)
    print(path)
    return 0


def cmd_info(a: argparse.Namespace) -> int:
    from ..architectures import arch_config
    from ..models import read_card, resolve_model_path

    path = resolve_model_path(a.model)
    card = read_card(path)
    try:
        arch_config(card)  # a card that describes no network we can build is reported, not printed
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    if a.json:
        _print_json(card)
    else:
        for k, v in card.items():
            print(f"{k:<16} {v}")
    return 0


def cmd_weights(a: argparse.Namespace) -> int:
    from ..models import require_torch

    require_torch("`weights` (the loss networks of training and evaluation)")
    from ..training.weights import resolve_lpips, resolve_vgg16

    vgg = resolve_vgg16(a.vgg_weights)
    _, _, lpips_path = resolve_lpips("alex")
    doc = {"vgg16": {"source": vgg.source, "path": vgg.path, "sha256": vgg.sha256},
           "lpips_alex": {"path": lpips_path}}
    if a.json:
        _print_json(doc)
    else:
        print(f"vgg16   {vgg.source}: {vgg.path}\n        sha256 {vgg.sha256}")
        print(f"lpips   {lpips_path}")
    return 0


def cmd_optimize(a: argparse.Namespace) -> int:
    """The Gatys et al. baseline: optimize one image on the training objective, write it."""
    from ..runtime.images import save_image
    from ..runtime.listing import check_image_output, refuse_overwriting_inputs
    from ..training.losses import STYLE_SIZE, ObjectiveWeights
    from ..training.optimize import optimize_files

    out = Path(a.output)
    # Checked before the (long) optimization rather than by save_image after it.
    check_image_output(out)
    refuse_overwriting_inputs(out, [a.content, a.style])
    if a.precision not in ("auto", "fp32"):
        log.warning("optimize: --precision %s ignored; the baseline runs in fp32", a.precision)
    result, content = optimize_files(a.content, a.style, a.iters, weights=_config(ObjectiveWeights, a), size=a.size,
                                     style_size=STYLE_SIZE if a.style_size is None else a.style_size,
                                     optimizer=a.optimizer, init=a.init, lr=a.lr, seed=a.seed,
                                     vgg_weights=a.vgg_weights, device=a.device)
    t = result.history[-1]
    log.info("%s after %d %s iterations (%.1f s): total %.6g (content %.6g, style %.6g, tv %.6g)",
             a.content, a.iters, a.optimizer, result.seconds[-1], t["total"], t["content"], t["style"], t["tv"])
    print(save_image(result.image, out, alpha=content.alpha))
    return 0


def _finite_json(doc):
    """``doc`` with non-finite floats (PSNR of an exact reconstruction) as None: strict JSON."""
    import math

    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: _finite_json(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [_finite_json(v) for v in doc]
    return doc


def _report(a: argparse.Namespace, result: dict, table: Callable[[dict], str], what: str) -> int:
    """An evaluation's result as strict JSON (``--json``) or its table; exit 2 after unreadable inputs."""
    if a.json:
        _print_json(_finite_json(result))
    else:
        print(table(result))
    return _exit_after_skips(result, what)


def _exit_after_skips(result: dict, what: str) -> int:
    """Exit 2 after reporting unreadable inputs: a batch goes on past bad files, then says so."""
    skipped = result["skipped"]
    if not skipped:
        return 0
    total = len(skipped) + len(result["images"])
    print(f"fastpercept: {len(skipped)} of {total} {what} could not be read", file=sys.stderr)
    return 2


def cmd_eval_sr(a: argparse.Namespace) -> int:
    from ..training.eval_sr import eval_sr, format_sr_table

    result = eval_sr(a.model, a.data, scale=a.scale, tile=a.tile, device=a.device, precision=a.precision,
                     lpips_net=a.lpips_net, degradation=a.degradation, jpeg_quality=a.jpeg, seed=a.seed)
    return _report(a, result, format_sr_table, "image pair(s)")


def cmd_eval_style(a: argparse.Namespace) -> int:
    from ..training.eval_style import eval_style, format_style_table

    result = eval_style(a.model, a.content, size=a.size, vs_optimize=a.vs_optimize, vgg_weights=a.vgg_weights,
                        device=a.device, precision=a.precision, style_image=a.style_image, crop=a.crop)
    return _report(a, result, format_style_table, "content image(s)")


def main(argv: Sequence[str] | None = None) -> int:
    import signal
    import threading

    def terminate(signum: int, frame) -> None:
        # SIGTERM stops a command as Ctrl-C does: the exception unwinds through the atomic writers
        # (outputs complete or absent). A second one is ignored so that it cannot cut that short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted(signum=signum)

    # train installs its own handler (a checkpoint first) while it runs, then puts this one back.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if in_main_thread else None
    try:  # everything, the parser's imports included: Ctrl-C at any moment is one line, exit 130
        args = sys.argv[1:] if argv is None else list(argv)
        parser = build_parser(next((t for t in args if not t.startswith("-")), None))
        a = parser.parse_args(args)  # bad usage: one line of error (OneLineParser), exit 2
        # Our messages at INFO (-v: DEBUG); other libraries' only from WARNING up, whatever state
        # their own logging set-up is in (PyTorch's is half done when Ctrl-C stops its import).
        logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
        log.setLevel(logging.DEBUG if a.verbose else logging.INFO)
        return a.func(a)
    except UserError as e:
        print(f"fastpercept: error: {as_flags(str(e))}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"fastpercept: interrupted: {e}" if str(e) else "fastpercept: interrupted", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("fastpercept: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as e:
        # Ctrl-C while a class is being created (an import) reaches us wrapped by Python's __set_name__.
        if isinstance(e.__cause__, (KeyboardInterrupt, Interrupted)):
            print("fastpercept: interrupted", file=sys.stderr)
            return 128 + getattr(e.__cause__, "signum", signal.SIGINT)
        raise
    except BrokenPipeError:  # `fastpercept models | head`: the reader left, not an error of ours
        sys.stdout = open(os.devnull, "w")
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run() -> None:
    """The ``fastpercept`` command: :func:`main`, then exit with its code.

    After an interruption the process ends with ``os._exit``: a Ctrl-C that lands while a C
    extension runs Python code of its own (PyTorch's import does) leaves CPython's "unhandled
    KeyboardInterrupt" mark set even though :func:`main` caught it, and the interpreter would then
    kill itself with SIGINT at exit (status -2) instead of exiting 130. The outputs are already
    complete or removed by then; only the streams need flushing.
    """
    code = main()
    if code in (130, 143):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
