"""The adversarial pass of issue 16: every reproduced case, as it behaves now.

Most cases run the command line in-process (``cli.main``), which is what a user's process runs,
so memory limits can be patched and no interpreter start is paid per case. Numbers in the test
names are the issue's.
"""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import fastpercept
from fastpercept.apps import cli
from fastpercept.runtime import images
from fastpercept.errors import InputTypeError, UserError
from fastpercept.models import CARD_KEY, save_model
from fastpercept.nets.sr import SRNet, SRNetConfig
from fastpercept.nets.style import StyleNet, StyleNetConfig

GIB = 2**30


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def _photo(path: Path, h: int = 24, w: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    return _png(path, (rng.random((h, w, 3)) * 255).astype(np.uint8))


def _bomb_png(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A tiny PNG whose header declares a huge single-color image (the decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x80" * (3 * width)
    idat = zlib.compress(row * 4)  # a few rows; the header is all the check reads
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def style_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "toy.safetensors"
    card = {"task": "style", "arch": "half", "norm": "instance", "upsample": "nearest", "iterations": 0,
            "style_image": "none.png"}
    return save_model(StyleNet(StyleNetConfig(arch="half")), path, card)


@pytest.fixture(scope="module")
def sr_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("srmodel") / "tiny-x4.safetensors"
    net = SRNet(SRNetConfig(scale=4, channels=8, residual_blocks=1))
    return save_model(net, path, {"task": "sr", "arch": "srnet", **net.config.to_dict(), "loss": "pixel"})


# ------------------------------------------------------------------------- the decompression bomb


def test_bomb_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    bomb = _bomb_png(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 1_000_000
    monkeypatch.setattr(images, "available_memory", lambda device="cpu": 4 * GIB)  # a 4 GiB container
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or None)
    with pytest.raises(UserError) as e:
        images.load_image(bomb)
    message = str(e.value)
    assert "30000x30000" in message and "GiB is available" in message and "shrink the file" in message
    assert not decoded  # refused from the header: nothing was decoded


def test_bomb_in_a_batch_fails_alone_and_the_batch_goes_on(tmp_path, monkeypatch, capsys, style_model):
    folder = tmp_path / "in"
    goods = [_photo(folder / f"good{i}.png", seed=i) for i in range(3)]
    _bomb_png(folder / "bomb.png")
    monkeypatch.setattr(images, "available_memory", lambda device="cpu": 4 * GIB)
    code, out, err = run_cli(capsys, "stylize", folder, "-o", tmp_path / "out/", "--style", style_model,
                             "--precision", "fp32")
    assert code == 2
    assert sorted(Path(p).name for p in out.split()) == [g.name for g in goods]
    assert "bomb.png: 30000x30000 image needs about" in err and "1 of 4 inputs failed" in err


def test_memory_limit_comes_from_the_cgroup(monkeypatch, tmp_path):
    from fastpercept.runtime import memory

    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text(str(3 * GIB))
    usage.write_text(str(GIB))
    monkeypatch.setattr(memory, "_CGROUP_FILES", ((limit, usage),))
    assert memory.cgroup_available() == 2 * GIB
    assert memory.available_memory("cpu") <= 2 * GIB
    limit.write_text("max")
    assert memory.cgroup_available() == 1 << 62


def test_jpeg_max_size_hint_fits_once_decoded_small(tmp_path, monkeypatch):
    big = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (10, 20, 30)).save(big, quality=50)
    need = 8 * 4000 * 3000 + 20 * 4000 * 3000
    monkeypatch.setattr(images, "available_memory", lambda device="cpu": need // 3)
    with pytest.raises(UserError, match=r"max_size=\d+ fits"):
        images.load_image(big)
    assert images.load_image(big, max_size=1000).size == (1000, 750)  # decoded at reduced size, fits


# ------------------------------------------------------------------ data loss and wrong output


def test_1_api_never_overwrites_its_input(tmp_path, style_model, sr_model):
    src = _photo(tmp_path / "in.png")
    before = src.read_bytes()
    with pytest.raises(UserError, match="would overwrite the input"):
        fastpercept.stylize(src, style_model, output=src)
    with pytest.raises(UserError, match="would overwrite the input"):
        fastpercept.upscale(str(src), sr_model, output=str(tmp_path / "." / "in.png"))
    assert src.read_bytes() == before


def test_2_a_folder_run_never_replaces_the_users_look_alike_files(tmp_path, capsys, style_model):
    folder = tmp_path / "d"
    _photo(folder / "v.png")
    mine = _photo(folder / "v-toy.png", seed=7)  # the user's own file, named like our output
    before = mine.read_bytes()
    code, out, err = run_cli(capsys, "stylize", folder, "--style", style_model, "--precision", "fp32")
    assert code == 2 and mine.read_bytes() == before
    assert "v-toy.png: exists (not written by this run); pass --overwrite" in one_line(err)
    code, out, err = run_cli(capsys, "stylize", folder, "--style", style_model, "--precision", "fp32",
                             "--overwrite")
    assert code == 0 and mine.read_bytes() != before


def test_3_training_output_cannot_replace_an_input(tmp_path, capsys):
    data = tmp_path / "d"
    photo = _photo(data / "photo.png")
    style = _photo(tmp_path / "s.png", seed=3)
    before = (style.read_bytes(), photo.read_bytes())
    for out in (style, photo):
        code, _, err = run_cli(capsys, "train", "style", "--data", data, "--style-image", style, "-o", out)
        assert code == 2 and ".safetensors" in one_line(err)
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"not really")
    code, _, err = run_cli(capsys, "train", "style", "--data", data, "--style-image", style, "-o", model,
                           "--init-from", model)
    assert code == 2 and "would overwrite the input" in one_line(err)
    code, _, err = run_cli(capsys, "train", "sr", "--data", data, "--scale", "4", "--loss", "pixel", "-o", photo)
    assert code == 2 and ".safetensors" in one_line(err)
    assert (style.read_bytes(), photo.read_bytes()) == before and not list(tmp_path.rglob("*.ckpt"))


def test_4_resume_refuses_a_different_style_image_or_dataset(tmp_path, capsys):
    data = tmp_path / "d"
    for i in range(2):
        _photo(data / f"p{i}.png", 40, 40, seed=i)
    style = _photo(tmp_path / "s.png", 32, 32, seed=3)
    out = tmp_path / "m.safetensors"
    base = ["train", "style", "--data", data, "-o", out, "--batch-size", "1", "--image-size", "32",
            "--style-size", "32", "--arch", "half", "--precision", "fp32"]
    assert run_cli(capsys, *base, "--style-image", style, "--iters", "1")[0] == 0
    other = _photo(tmp_path / "elsewhere" / "s.png", 32, 32, seed=4)  # another image, same name
    code, _, err = run_cli(capsys, *base, "--style-image", other, "--iters", "2", "--resume")
    assert code == 2 and "style image sha256" in one_line(err)
    _photo(data / "p2.png", 40, 40, seed=5)  # the data set changed
    code, _, err = run_cli(capsys, *base, "--style-image", style, "--iters", "2", "--resume")
    assert code == 2 and "data files" in one_line(err)


def test_8_api_tensors_on_the_wrong_scale_are_refused_not_whitened(style_model, sr_model):
    x = torch.rand(1, 3, 20, 20)
    with pytest.raises(UserError, match="expected \\[0, 1\\]"):
        fastpercept.upscale(x * 255, sr_model)
    with pytest.raises(UserError, match="expected \\[0, 1\\]"):
        fastpercept.stylize(x * 255, style_model, strength=0.5)
    as_uint8 = (x * 255).round().to(torch.uint8)
    y = fastpercept.upscale(as_uint8, sr_model, precision="fp32")
    assert y.dtype == torch.uint8 and y.shape == (1, 3, 80, 80)
    expected = fastpercept.upscale(as_uint8.float() / 255, sr_model, precision="fp32")
    assert (y.float() - expected * 255).abs().max() <= 0.5 + 1e-4
    assert 60 < y.float().mean() < 200  # not all white


def test_9_a_model_with_nan_weights_is_refused_at_load(tmp_path, style_model):
    tensors = load_file(style_model)
    tensors[next(iter(tensors))][..., 0] = float("nan")
    from safetensors import safe_open

    with safe_open(str(style_model), framework="pt") as f:
        meta = f.metadata()
    broken = tmp_path / "nan.safetensors"
    save_file(tensors, str(broken), metadata=meta)
    with pytest.raises(UserError, match="NaN or infinity"):
        fastpercept.load_model(broken)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_9_animated_images_say_only_the_first_frame_is_used(tmp_path, fmt, caplog):
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with caplog.at_level("WARNING"):
        loaded = images.load_image(path)
    assert "animated (2 frames); using the first frame" in caplog.text
    assert loaded.rgb[0, 0].mean() > 0.9  # red, the first frame


def test_9_tensor_with_output_writes_the_file(tmp_path, style_model):
    x = torch.rand(1, 3, 20, 24)
    y = fastpercept.stylize(x, style_model, output=tmp_path / "t.png", precision="fp32")
    assert isinstance(y, torch.Tensor) and Image.open(tmp_path / "t.png").size == (24, 20)
    with pytest.raises(UserError, match="batch of 2"):
        fastpercept.stylize(torch.rand(2, 3, 8, 8), style_model, output=tmp_path / "u.png")


# ---------------------------------------------------------------- tracebacks on user input


@pytest.mark.parametrize(("flags", "message"), [
    (["--lr", "-1"], "--lr"), (["--lr", "nan"], "--lr"), (["--content-weight", "nan"], "--content-weight"),
    (["--style-weight", "-2"], "--style-weight"), (["--workers", "-1"], "--workers"),
    (["--style-layers", "relu9_9"], "unknown VGG-16 layer"), (["--content-layer", "conv1"], "unknown VGG-16 layer"),
    (["--image-size", "1"], "--image-size"), (["--image-size", "100000"], "--image-size"),
    (["-o", "/proc/m.safetensors"], "cannot write the model"), (["--checkpoint-dir", "FILE"], "is a file"),
])
def test_10_bad_training_arguments_are_one_line_before_anything_is_written(tmp_path, capsys, flags, message):
    data = tmp_path / "d"
    _photo(data / "p.png", 40, 40)
    style = _photo(tmp_path / "s.png", seed=1)
    (tmp_path / "FILE").write_text("a file")
    flags = [str(tmp_path / "FILE") if f == "FILE" else f for f in flags]
    out = ["-o", tmp_path / "m.safetensors"] if "-o" not in flags else []
    code, _, err = run_cli(capsys, "train", "style", "--data", data, "--style-image", style, *out, *flags)
    assert code == 2 and message in one_line(err)
    assert not (tmp_path / "m.ckpt").exists()


@pytest.mark.parametrize(("flags", "message"), [(["--patch-size", "4"], "--patch-size"),
                                                (["--blur-sigma", "-1"], "--blur-sigma")])
def test_10_bad_sr_training_arguments(tmp_path, capsys, flags, message):
    data = tmp_path / "d"
    _photo(data / "p.png", 40, 40)
    code, _, err = run_cli(capsys, "train", "sr", "--data", data, "--scale", "4", "--loss", "pixel",
                           "-o", tmp_path / "m.safetensors", *flags)
    assert code == 2 and message in one_line(err) and not (tmp_path / "m.ckpt").exists()


@pytest.mark.parametrize("flags", [["--lr", "-1"], ["--size", "1"], ["--style-size", "1"]])
def test_11_bad_optimize_arguments(tmp_path, capsys, flags):
    content, style = _photo(tmp_path / "c.png"), _photo(tmp_path / "s.png", seed=1)
    code, _, err = run_cli(capsys, "optimize", "--content", content, "--style", style, "-o", tmp_path / "o.png",
                           "--iters", "1", *flags)
    assert code == 2 and flags[0] in one_line(err)


def test_11_eval_style_size_1_and_eval_sr_on_a_3x3_image(tmp_path, capsys, style_model, sr_model):
    _photo(tmp_path / "c" / "a.png")
    code, _, err = run_cli(capsys, "eval", "style", "--model", style_model, "--content", tmp_path / "c",
                           "--size", "1", "--style-image", tmp_path / "c" / "a.png")
    assert code == 2 and "--size" in one_line(err)
    _photo(tmp_path / "b" / "HR" / "x.png", 3, 3)
    code, _, err = run_cli(capsys, "eval", "sr", "--model", sr_model, "--data", tmp_path / "b")
    assert code == 2 and "Traceback" not in err and "none of the 1 image pair" in err


@pytest.mark.parametrize("card", [
    {"task": "style", "arch": "bogus"}, {"task": "sr", "scale": 3}, {"task": "sr", "scale": "4"},
    {"task": "style", "residual_blocks": "five"}, ["a", "list"], {"task": "mystery"}, {"arch": "full"},
])
def test_12_malformed_cards_are_one_line_in_stylize_upscale_and_info(tmp_path, capsys, card, style_model):
    path = tmp_path / "bad.safetensors"
    save_file(load_file(style_model), str(path), metadata={CARD_KEY: json.dumps(card)})
    photo = _photo(tmp_path / "p.png")
    for args in (["stylize", photo, "--style", path], ["upscale", photo, "--model", path], ["info", path]):
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and "bad.safetensors" in one_line(err), (args, err)


def test_12_weights_of_another_shape_name_the_tensor(tmp_path, style_model):
    path = tmp_path / "wide.safetensors"
    card = {"task": "style", "arch": "full", "norm": "instance", "upsample": "nearest"}
    save_file(load_file(style_model), str(path), metadata={CARD_KEY: json.dumps(card)})
    with pytest.raises(UserError, match=r"encoder\.0\.0\.1\.weight is \(16, 3, 9, 9\), the card's network has"):
        fastpercept.load_model(path)


def test_13_an_unwritable_weights_cache_is_one_line(tmp_path):
    from fastpercept.training.weights import _atomic_save_safetensors

    with pytest.raises(UserError, match="FASTPERCEPT_CACHE"):
        _atomic_save_safetensors({"a": torch.zeros(1)}, Path("/proc/nope/vgg16.safetensors"))


def test_13_ctrl_c_at_any_moment_is_one_line_and_130(monkeypatch, capsys):
    def interrupted(command=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)  # while the parser's imports load
    assert cli.main(["models"]) == 130
    assert one_line(capsys.readouterr().err) == "fastpercept: interrupted"


def test_13_ctrl_c_in_the_first_seconds_of_a_real_process(tmp_path, style_model):
    # Seconds of work in fp32 (a signal in the last milliseconds of exit would find Python's handlers
    # already reset): every signal below lands in the imports or the network.
    photo = _photo(tmp_path / "p.png", 1536, 1536)
    codes = []
    # While torch imports (1.0 s), and later while the image decodes and the network runs: one line
    # and exit 130 each time. (Not sooner: in the first tenths of a second of a cold start Python has
    # not installed its handler yet, and the default action ends the process, -2, with no message.)
    for delay in (1.0, 1.6, 2.2):
        proc = subprocess.Popen([sys.executable, "-m", "fastpercept", "stylize", str(photo), "-o",
                                 str(tmp_path / f"o{delay}.png"), "--style", str(style_model), "--backend", "torch",
                                 "--precision", "fp32"], stderr=subprocess.PIPE, text=True,
                                # A shell's background job (CI's, say) ignores SIGINT, and its children
                                # inherit that: give the command the terminal's default, as a user's has.
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        codes.append(proc.returncode)
        if proc.returncode == 130:
            assert one_line(err) == "fastpercept: interrupted"
            assert not (tmp_path / f"o{delay}.png").exists()
    assert codes == [130, 130, 130], codes


# -------------------------------------------------------------------- batch promise, messages


def test_14_one_missing_input_among_several_does_not_stop_the_batch(tmp_path, capsys, style_model):
    a, b = _photo(tmp_path / "a.png"), _photo(tmp_path / "b.png", seed=1)
    code, out, err = run_cli(capsys, "stylize", a, tmp_path / "gone.png", b, "-o", tmp_path / "out/",
                             "--style", style_model, "--precision", "fp32")
    assert code == 2 and len(out.split()) == 2
    assert "gone.png: no such file or folder" in err and "1 of 3 inputs failed" in err


def test_14_eval_sr_skips_a_mismatched_pair_and_scores_the_rest(tmp_path, capsys, sr_model):
    bench = tmp_path / "bench"
    for name, lr_side in (("a.png", 8), ("b.png", 8), ("c.png", 5)):  # c: LR is not x4 of its HR
        _photo(bench / "HR" / name, 32, 32)
        _photo(bench / "LR_x4" / name, lr_side, lr_side)
    code, out, err = run_cli(capsys, "eval", "sr", "--model", sr_model, "--data", bench, "--json")
    result = json.loads(out)
    assert code == 2 and [im["name"] for im in result["images"]] == ["a.png", "b.png"]
    assert result["skipped"] == ["c.png"] and "c.png" in err


@pytest.mark.parametrize("out", ["out.gif", "out.xyz", "out", "-"])
def test_15_outputs_that_are_not_image_files_make_no_folder(tmp_path, capsys, monkeypatch, out, style_model):
    monkeypatch.chdir(tmp_path)
    photo = _photo(tmp_path / "p.png")
    code, _, err = run_cli(capsys, "stylize", photo, "-o", out, "--style", style_model)
    assert code == 2 and one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


@pytest.mark.parametrize("image", [
    np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.int32), torch.rand(8, 8), torch.rand(1, 4, 8, 8),
    torch.rand(0, 3, 8, 8), 42,
])
def test_16_api_type_errors_say_what_is_expected(image, style_model):
    with pytest.raises(InputTypeError) as e:
        fastpercept.stylize(image, style_model)
    assert "expected" in str(e.value) or "pass a PIL image" in str(e.value)
    assert isinstance(e.value, TypeError) and isinstance(e.value, ValueError)


def test_17_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["stylize"])
    assert e.value.code == 2
    assert one_line(capsys.readouterr().err).startswith("fastpercept: error: the following arguments are required")


def test_17_empty_style_name_and_negative_weights(tmp_path, capsys, style_model):
    photo = _photo(tmp_path / "p.png")
    code, _, err = run_cli(capsys, "stylize", photo, "--style", "")
    assert code == 2 and "--style is empty" in one_line(err)


def test_17_eval_style_json_is_strict(tmp_path, capsys, monkeypatch, style_model):
    from fastpercept.training import eval_style

    _photo(tmp_path / "c" / "a.png", 32, 32)
    real = eval_style.eval_style

    def with_nan(*args, **kwargs):
        result = real(*args, **kwargs)
        result["mean"]["network"]["style"] = float("nan")
        return result

    monkeypatch.setattr(eval_style, "eval_style", with_nan)
    code, out, _ = run_cli(capsys, "eval", "style", "--model", style_model, "--content", tmp_path / "c",
                           "--size", "32", "--style-image", tmp_path / "c" / "a.png", "--json")
    assert code == 0 and json.loads(out)["mean"]["network"]["style"] is None  # not the invalid token NaN
    assert "NaN" not in out


def test_17_verbose_does_not_flood_with_pillows_debug_lines(tmp_path, capsys, style_model):
    photo = _photo(tmp_path / "p.png")
    code, _, err = run_cli(capsys, "-v", "stylize", photo, "-o", tmp_path / "o.png", "--style", style_model,
                           "--precision", "fp32")
    assert code == 0 and "STREAM" not in err and "tEXt" not in err
