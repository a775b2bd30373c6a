"""Image I/O: every mode decodes to RGB in [0, 1], bad files become UserErrors, saves are atomic."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastpercept.runtime import images
from fastpercept.errors import UserError
from fastpercept.runtime.images import IMAGE_SUFFIXES, LoadedImage, load_image, save_image, to_pil
from fastpercept.runtime.listing import list_images, plan_outputs


def _rgb_array(h: int = 3, w: int = 4) -> np.ndarray:
    """A small (H, W, 3) uint8 image with distinct values, including 0 and 255."""
    values = (np.arange(h * w * 3) * 7) % 256
    values[0], values[-1] = 0, 255
    return values.reshape(h, w, 3).astype(np.uint8)


def _write(path: Path, image: Image.Image, **options) -> Path:
    image.save(path, **options)
    return path


def _touch_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return _write(path, Image.new("RGB", (2, 2), (10, 20, 30)))


# ------------------------------------------------------------------------------ bad inputs


def _truncated(tmp_path: Path, name: str, fmt: str) -> Path:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # noise: the data is not tiny
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format=fmt)
    data = buffer.getvalue()
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    return path


def _bad_file(tmp_path: Path, kind: str) -> Path:
    """A path that load_image must refuse, of the given kind."""
    if kind == "truncated-jpeg":
        return _truncated(tmp_path, "cut.jpg", "JPEG")
    if kind == "truncated-png":
        return _truncated(tmp_path, "cut.png", "PNG")
    path = tmp_path / {"empty": "empty.png", "text": "text.png", "corrupt-bytes": "junk.jpg",
                       "missing": "missing.png", "directory": "folder.png"}[kind]
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello, not an image")
    elif kind == "corrupt-bytes":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "directory":
        path.mkdir()
    return path


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("truncated-jpeg", "cannot read image (truncated or corrupt"),
        ("truncated-png", "cannot read image (truncated or corrupt"),
        ("empty", "empty file"),
        ("text", "not an image"),
        ("corrupt-bytes", "not an image"),
        ("missing", "no such file"),
        ("directory", "is a folder"),
    ],
)
def test_bad_input_is_a_user_error_naming_the_file(tmp_path, kind, problem):
    path = _bad_file(tmp_path, kind)
    with pytest.raises(UserError) as info:
        load_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert "\n" not in message


def test_corrupt_png_body_is_a_user_error(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(_rgb_array(16, 16)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[60:80] = b"\xff" * 20  # inside IDAT: header parses, decoding fails
    path = tmp_path / "broken.png"
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"broken\.png: cannot read image"):
        load_image(path)


def test_image_above_the_pixel_limit_suggests_max_size(tmp_path, monkeypatch):
    path = _write(tmp_path / "wide.png", Image.new("RGB", (40, 30)))
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(UserError, match=r"wide\.png: image too large \(40x30.*max_size="):
        load_image(path)
    assert Image.MAX_IMAGE_PIXELS == pillow_limit  # restored even though loading failed
    # A JPEG decodes at reduced size when --max-size allows it, so it stays under the limit.
    jpeg = _write(tmp_path / "wide.jpg", Image.new("RGB", (40, 30)))
    assert load_image(jpeg, max_size=10).size == (10, 8)


def test_pillow_bomb_limit_does_not_apply_and_is_restored(tmp_path, monkeypatch):
    path = _write(tmp_path / "big.png", Image.new("L", (50, 40)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow would raise above 200 px
    loaded = load_image(path)
    assert loaded.size == (50, 40)
    assert Image.MAX_IMAGE_PIXELS == 100


def test_invalid_max_size_is_a_user_error(tmp_path):
    path = _write(tmp_path / "a.png", Image.new("RGB", (4, 4)))
    with pytest.raises(UserError, match="max_size="):
        load_image(path, max_size=0)


# ----------------------------------------------------------------------------------- modes


def test_rgb_png_values_shape_and_dtype(tmp_path):
    array = _rgb_array()
    loaded = load_image(_write(tmp_path / "a.png", Image.fromarray(array)))
    assert isinstance(loaded, LoadedImage)
    assert loaded.rgb.shape == (1, 3, 3, 4)
    assert loaded.rgb.dtype == torch.float32
    assert loaded.alpha is None
    assert (loaded.source_mode, loaded.bit_depth) == ("RGB", 8)
    assert loaded.path == tmp_path / "a.png"
    expected = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    assert torch.equal(loaded.rgb[0], expected)


def test_grayscale_l_is_replicated_to_three_channels(tmp_path):
    gray = np.array([[0, 128, 255]], dtype=np.uint8)
    loaded = load_image(_write(tmp_path / "g.png", Image.fromarray(gray)))
    assert loaded.source_mode == "L"
    assert loaded.alpha is None
    for c in range(3):
        assert loaded.rgb[0, c, 0].tolist() == pytest.approx([0.0, 128 / 255, 1.0])


def test_la_keeps_alpha(tmp_path):
    image = Image.new("LA", (2, 1))
    image.putpixel((0, 0), (200, 0))
    image.putpixel((1, 0), (50, 255))
    loaded = load_image(_write(tmp_path / "la.png", image))
    assert loaded.source_mode == "LA"
    assert loaded.alpha is not None
    assert loaded.alpha[0, 0, 0].tolist() == [0.0, 1.0]
    assert loaded.rgb[0, :, 0, 0].tolist() == pytest.approx([200 / 255] * 3)
    assert loaded.rgb[0, :, 0, 1].tolist() == pytest.approx([50 / 255] * 3)


def test_one_bit_image_is_black_and_white(tmp_path):
    image = Image.new("1", (2, 1))
    image.putpixel((1, 0), 1)
    loaded = load_image(_write(tmp_path / "bw.png", image))
    assert loaded.source_mode == "1"
    assert loaded.rgb[0, :, 0, 0].tolist() == [0.0, 0.0, 0.0]
    assert loaded.rgb[0, :, 0, 1].tolist() == [1.0, 1.0, 1.0]


def test_palette_with_transparency_gives_alpha(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0  # palette entry 0 (red) is fully transparent
    loaded = load_image(_write(tmp_path / "p.png", image))
    assert loaded.source_mode == "P"
    assert loaded.alpha is not None
    assert loaded.alpha[0, 0, 0].tolist() == [0.0, 1.0]
    assert loaded.rgb[0, :, 0, 1].tolist() == [0.0, 1.0, 0.0]


def test_palette_without_transparency_has_no_alpha(tmp_path):
    image = Image.new("P", (1, 1))
    image.putpalette([0, 0, 255] + [0] * (256 * 3 - 3))
    loaded = load_image(_write(tmp_path / "p.gif", image))
    assert loaded.alpha is None
    assert loaded.rgb[0, :, 0, 0].tolist() == [0.0, 0.0, 1.0]


def test_rgba_alpha_is_exact(tmp_path):
    array = np.zeros((2, 2, 4), dtype=np.uint8)
    array[..., 0] = 255
    array[..., 3] = [[0, 255], [255, 0]]
    loaded = load_image(_write(tmp_path / "rgba.png", Image.fromarray(array)))
    assert loaded.source_mode == "RGBA"
    assert loaded.alpha.shape == (1, 1, 2, 2)
    assert loaded.alpha[0, 0].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert loaded.rgb[0, 0].tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_cmyk_jpeg_converts_to_rgb(tmp_path):
    # Pure cyan ink = no red; magenta+yellow = red. JPEG is lossy, so allow a little error.
    image = Image.new("CMYK", (8, 8), (0, 255, 255, 0))
    loaded = load_image(_write(tmp_path / "cmyk.jpg", image, quality=100))
    assert loaded.source_mode == "CMYK"
    assert loaded.rgb.shape == (1, 3, 8, 8)
    assert loaded.rgb[0, :, 4, 4].tolist() == pytest.approx([1.0, 0.0, 0.0], abs=0.03)


def test_16_bit_grayscale_png_scales_by_65535(tmp_path):
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    loaded = load_image(_write(tmp_path / "g16.png", Image.fromarray(values)))
    assert loaded.source_mode == "I;16"
    assert loaded.bit_depth == 16
    assert loaded.rgb[0, 0, 0].tolist() == pytest.approx([0.0, 32768 / 65535, 1.0], abs=1e-6)
    assert torch.equal(loaded.rgb[0, 0], loaded.rgb[0, 2])


def test_32_bit_integer_tiff_scales_by_65535(tmp_path):
    values = np.array([[0, 65535, 100000]], dtype=np.int32)
    loaded = load_image(_write(tmp_path / "i.tif", Image.fromarray(values)))
    assert loaded.source_mode == "I"
    assert loaded.rgb[0, 1, 0].tolist() == pytest.approx([0.0, 1.0, 1.0])  # 100000 clamps


def test_float_tiff_is_taken_as_0_to_1_and_clamped(tmp_path):
    values = np.array([[-0.5, 0.25, 1.5]], dtype=np.float32)
    loaded = load_image(_write(tmp_path / "f.tif", Image.fromarray(values)))
    assert loaded.source_mode == "F"
    assert loaded.rgb[0, 2, 0].tolist() == pytest.approx([0.0, 0.25, 1.0])


@pytest.mark.parametrize("white", [255.0, 65535.0])
def test_float_tiff_on_an_integer_scale_is_detected(tmp_path, white):
    values = np.array([[0.0, 0.25, 1.0]], dtype=np.float32) * white  # was all white: clamped at 1
    loaded = load_image(_write(tmp_path / "f.tif", Image.fromarray(values)))
    assert loaded.rgb[0, 2, 0].tolist() == pytest.approx([0.0, 0.25, 1.0])


def test_float_tiff_beyond_16_bit_is_refused(tmp_path):
    path = _write(tmp_path / "f.tif", Image.fromarray(np.array([[0.0, 1e6]], dtype=np.float32)))
    with pytest.raises(UserError, match="values up to 1e"):
        load_image(path)


@pytest.mark.parametrize(("orientation", "turns"), [(6, -1), (8, 1)])
def test_exif_orientation_is_applied(tmp_path, orientation, turns):
    # Stored 4 wide x 2 high; orientation 6 means "rotate 90 clockwise to display", 8 counter.
    stored = (np.arange(8, dtype=np.uint8).reshape(2, 4) * 30)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _write(tmp_path / "turned.png", Image.fromarray(stored), exif=exif)
    loaded = load_image(path)
    assert loaded.size == (2, 4)
    expected = np.rot90(stored, k=turns).astype(np.float32) / 255
    assert np.array_equal(loaded.rgb[0, 0].numpy(), expected)
    assert np.array_equal(loaded.rgb[0, 1].numpy(), expected)


# -------------------------------------------------------------------------------- max_size


def test_max_size_downscales_keeping_aspect(tmp_path):
    path = _write(tmp_path / "wide.png", Image.new("RGB", (100, 50), (40, 80, 120)))
    loaded = load_image(path, max_size=20)
    assert loaded.size == (20, 10)
    # A flat colour stays that colour under Lanczos.
    assert loaded.rgb[0, :, 5, 10].tolist() == pytest.approx([40 / 255, 80 / 255, 120 / 255], abs=1e-6)


def test_max_size_never_upscales(tmp_path):
    path = _write(tmp_path / "small.png", Image.new("RGB", (30, 10)))
    assert load_image(path, max_size=1000).size == (30, 10)
    assert load_image(path, max_size=30).size == (30, 10)


def test_max_size_on_jpeg_and_16_bit(tmp_path):
    jpeg = _write(tmp_path / "tall.jpg", Image.new("RGB", (60, 240), (200, 200, 200)))
    assert load_image(jpeg, max_size=50).size == (13, 50)  # via JPEG draft + Lanczos
    deep = _write(tmp_path / "deep.png", Image.fromarray(np.full((40, 80), 65535, np.uint16)))
    small = load_image(deep, max_size=8)
    assert small.size == (8, 4)
    assert small.rgb.min().item() == pytest.approx(1.0)
    assert small.rgb.max().item() <= 1.0


def test_max_size_with_alpha_does_not_bleed_hidden_colour(tmp_path):
    array = np.zeros((8, 8, 4), dtype=np.uint8)
    array[:, :4] = (255, 255, 255, 255)  # opaque white on the left
    array[:, 4:] = (255, 0, 0, 0)  # invisible red on the right
    loaded = load_image(_write(tmp_path / "a.png", Image.fromarray(array)), max_size=4)
    assert loaded.alpha is not None and loaded.alpha.shape == (1, 1, 4, 4)
    # Where the result is opaque, it is white: the invisible red did not leak in.
    assert loaded.rgb[0, :, 1, 0].tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1 / 255)


# --------------------------------------------------------------------------------- saving


def test_png_round_trip_is_exact(tmp_path):
    array = _rgb_array(5, 7)
    rgb = torch.from_numpy(array).permute(2, 0, 1).float().unsqueeze(0) / 255
    alpha = torch.linspace(0, 1, 35).reshape(1, 1, 5, 7)
    out = save_image(rgb, tmp_path / "out.png", alpha=alpha)
    assert out == tmp_path / "out.png"
    loaded = load_image(out)
    assert torch.equal(loaded.rgb, rgb)
    assert torch.equal(loaded.alpha, torch.floor(alpha * 255 + 0.5) / 255)


@pytest.mark.parametrize("suffix", [".jpg", ".JPEG", ".webp", ".bmp", ".tif", ".tiff"])
def test_every_suffix_writes_a_readable_file(tmp_path, suffix):
    rgb = torch.full((1, 3, 6, 6), 0.5)
    path = save_image(rgb, tmp_path / f"out{suffix}")
    loaded = load_image(path)
    assert loaded.size == (6, 6)
    assert loaded.rgb.mean().item() == pytest.approx(128 / 255, abs=0.02)


def test_alpha_is_composited_onto_white_for_jpeg_and_kept_for_tiff(tmp_path):
    rgb = torch.zeros(1, 3, 4, 4)
    alpha = torch.zeros(1, 1, 4, 4)  # fully transparent black
    jpeg = load_image(save_image(rgb, tmp_path / "o.jpg", alpha=alpha))
    assert jpeg.alpha is None
    assert jpeg.rgb.min().item() > 0.95
    tiff = load_image(save_image(rgb, tmp_path / "o.tif", alpha=alpha))
    assert tiff.alpha is not None and tiff.alpha.max().item() == 0.0


def test_to_pil_clamps_rounds_and_accepts_3d(tmp_path):
    rgb = torch.tensor([-1.0, 0.5, 2.0]).reshape(3, 1, 1)
    image = to_pil(rgb)
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (0, 128, 255)
    rgba = to_pil(rgb.unsqueeze(0), torch.full((1, 1, 1, 1), 0.2))
    assert rgba.mode == "RGBA" and rgba.getpixel((0, 0)) == (0, 128, 255, 51)


def test_unsupported_suffix_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"out\.gif: cannot write '\.gif'"):
        save_image(torch.zeros(1, 3, 2, 2), tmp_path / "out.gif")
    assert list(tmp_path.iterdir()) == []


def test_save_creates_parent_folders_with_normal_permissions(tmp_path):
    path = save_image(torch.zeros(1, 3, 2, 2), tmp_path / "a" / "b" / "c.png")
    assert path.is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_save_leaves_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")

    real_save = Image.Image.save

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"half an image")  # some bytes reach the temporary file first
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(UserError, match=r"out\.png: cannot write image \(No space left on device\)"):
        save_image(torch.zeros(1, 3, 2, 2), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    assert target.read_bytes() == b"previous result"

    # Same for a new file, and for an error that is not an OSError.
    def crashing_save(self, fp, *args, **kwargs):
        fp.write(b"x")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        save_image(torch.zeros(1, 3, 2, 2), tmp_path / "new.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]

    monkeypatch.setattr(Image.Image, "save", real_save)
    save_image(torch.zeros(1, 3, 2, 2), target)
    assert load_image(target).size == (2, 2)


def test_unwritable_location_is_a_user_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("I am a file, not a folder")
    with pytest.raises(UserError, match=r"file\.txt/out\.png: cannot write image"):
        save_image(torch.zeros(1, 3, 2, 2), blocker / "out.png")
    with pytest.raises(UserError, match=r"file\.txt/sub/out\.png: cannot write image"):
        save_image(torch.zeros(1, 3, 2, 2), blocker / "sub" / "out.png")
    assert blocker.read_text() == "I am a file, not a folder"


def test_saving_onto_a_folder_is_a_user_error(tmp_path):
    (tmp_path / "x.png").mkdir()
    with pytest.raises(UserError, match=r"x\.png: is a folder"):
        save_image(torch.zeros(1, 3, 2, 2), tmp_path / "x.png")


# ---------------------------------------------------------------------------- list_images


def test_list_images_walks_sorted_and_skips_hidden_and_other_files(tmp_path):
    for rel in ["b.png", "a.JPG", "sub/c.webp", "sub/deeper/d.tiff", ".hidden.png", ".cache/e.png", "notes.txt"]:
        path = tmp_path / "in" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded by list_images")
    found = list_images([tmp_path / "in"])
    assert [p.relative_to(tmp_path / "in").as_posix() for p in found] == [
        "a.JPG",
        "b.png",
        "sub/c.webp",
        "sub/deeper/d.tiff",
    ]
    flat = list_images([tmp_path / "in"], recursive=False)
    assert [p.name for p in flat] == ["a.JPG", "b.png"]


def test_list_images_takes_files_as_given_and_in_order(tmp_path):
    odd = tmp_path / "scan.dat"
    odd.write_bytes(b"x")
    folder = tmp_path / "f"
    _touch_image(folder / "z.png")
    assert list_images([odd, folder, odd]) == [odd, folder / "z.png"]


def test_list_images_errors(tmp_path):
    with pytest.raises(UserError, match=r"nope: no such file or folder"):
        list_images([tmp_path / "nope"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("hi")
    with pytest.raises(UserError, match=r"empty: no images found"):
        list_images([empty])


def test_image_suffixes_constant():
    assert IMAGE_SUFFIXES == (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


# --------------------------------------------------------------------------- plan_outputs


def test_plan_beside_inputs_when_no_out(tmp_path):
    a = _touch_image(tmp_path / "a.jpg")
    odd = tmp_path / "scan.gif"
    Image.new("P", (1, 1)).save(odd)
    assert plan_outputs([a, odd], None, "stylized") == [
        (a, tmp_path / "a-stylized.jpg"),
        (odd, tmp_path / "scan-stylized.png"),
    ]
    assert plan_outputs([odd], None, "x4", default_ext="webp") == [(odd, tmp_path / "scan-x4.webp")]


def test_plan_in_folder_skips_earlier_results(tmp_path):
    folder = tmp_path / "photos"
    a = _touch_image(folder / "a.png")
    _touch_image(folder / "a-stylized.png")  # left by an earlier run, or the user's own file
    b = _touch_image(folder / "b.png")
    # Never processed as an input, and never replaced unless asked.
    assert plan_outputs([folder], None, "stylized", overwrite=True) == [(a, folder / "a-stylized.png"),
                                                                         (b, folder / "b-stylized.png")]
    failed: list = []
    assert plan_outputs([folder], None, "stylized", failed=failed) == [(b, folder / "b-stylized.png")]
    assert failed == [(a, f"{folder / 'a-stylized.png'}: exists (not written by this run); "
                          "pass --overwrite to replace it")]
    with pytest.raises(UserError, match="--overwrite"):
        plan_outputs([folder], None, "stylized")


def test_plan_never_replaces_a_file_in_the_output_folder_unless_asked(tmp_path):
    a = _touch_image(tmp_path / "in" / "a.png")
    mine = _touch_image(tmp_path / "out" / "a.png")
    before = mine.read_bytes()
    failed: list = []
    assert plan_outputs([a], tmp_path / "out", "s", failed=failed) == [] and len(failed) == 1
    assert mine.read_bytes() == before
    assert plan_outputs([a], tmp_path / "out", "s", overwrite=True) == [(a, mine)]


def test_plan_reports_a_missing_input_and_keeps_the_others(tmp_path):
    a = _touch_image(tmp_path / "a.png")
    failed: list = []
    assert plan_outputs([tmp_path / "gone.png", a], tmp_path / "out", "s", failed=failed) == [
        (a, tmp_path / "out" / "a.png")]
    assert failed == [(tmp_path / "gone.png", f"{tmp_path / 'gone.png'}: no such file or folder")]


@pytest.mark.parametrize(("out", "message"), [("out.gif", "cannot write '.gif'"), ("out.xyz", "cannot write '.xyz'"),
                                              ("-", "standard output"), ("result", "no image suffix")])
def test_plan_refuses_outputs_that_are_neither_image_files_nor_folders(tmp_path, out, message):
    a = _touch_image(tmp_path / "a.png")
    with pytest.raises(UserError, match=re.escape(message)):
        plan_outputs([a], tmp_path / out if out != "-" else out, "s")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no folder made


def test_plan_follows_symlinked_folders_once(tmp_path):
    real = tmp_path / "real"
    a = _touch_image(real / "a.png")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "linked").symlink_to(real, target_is_directory=True)
    (real / "loop").symlink_to(real, target_is_directory=True)  # a cycle ends at the second visit
    assert list_images([tree]) == [tree / "linked" / "a.png"]
    assert a.exists()


def test_plan_single_file_to_named_file(tmp_path):
    a = _touch_image(tmp_path / "a.jpg")
    assert plan_outputs([a], tmp_path / "out" / "result.PNG", "s") == [(a, tmp_path / "out" / "result.PNG")]


def test_plan_folder_keeps_relative_paths(tmp_path):
    src = tmp_path / "src"
    a = _touch_image(src / "a.png")
    b = _touch_image(src / "sub" / "b.jpg")
    c = _touch_image(tmp_path / "c.bmp")
    out = tmp_path / "out"
    assert plan_outputs([src, c], out, "s") == [
        (a, out / "a.png"),
        (b, out / "sub" / "b.jpg"),
        (c, out / "c.bmp"),
    ]


def test_plan_single_file_to_folder(tmp_path):
    a = _touch_image(tmp_path / "a.png")
    # A folder is named with a trailing slash (or exists): a bare "results" is refused above.
    assert plan_outputs([a], f"{tmp_path / 'results'}/", "s") == [(a, tmp_path / "results" / "a.png")]
    (tmp_path / "existing").mkdir()
    assert plan_outputs([a], tmp_path / "existing", "s") == [(a, tmp_path / "existing" / "a.png")]


def test_plan_does_not_walk_an_output_folder_inside_the_input(tmp_path):
    src = tmp_path / "src"
    a = _touch_image(src / "a.png")
    _touch_image(src / "out" / "a.png")  # an earlier result
    assert plan_outputs([src], src / "out", "s", overwrite=True) == [(a, src / "out" / "a.png")]


def test_plan_refuses_to_overwrite_an_input(tmp_path):
    a = _touch_image(tmp_path / "a.png")
    with pytest.raises(UserError, match=r"a\.png: output would overwrite the input"):
        plan_outputs([a], a, "s")
    src = tmp_path / "src"
    _touch_image(src / "b.png")
    with pytest.raises(UserError, match=r"b\.png: output would overwrite the input"):
        plan_outputs([src], src, "s")
    # Explicitly given files are inputs even if they look like earlier results.
    b_result = _touch_image(tmp_path / "b-s.png")
    b = _touch_image(tmp_path / "b.png")
    with pytest.raises(UserError, match=r"b-s\.png: output would overwrite the input"):
        plan_outputs([b, b_result], None, "s")


def test_plan_refuses_two_inputs_for_one_output(tmp_path):
    x1 = _touch_image(tmp_path / "one" / "x.png")
    x2 = _touch_image(tmp_path / "two" / "x.png")
    with pytest.raises(UserError, match=r"x\.png: both .*one/x\.png and .*two/x\.png"):
        plan_outputs([x1, x2], tmp_path / "out", "s")


def test_plan_named_file_needs_exactly_one_input_file(tmp_path):
    a = _touch_image(tmp_path / "a.png")
    b = _touch_image(tmp_path / "b.png")
    with pytest.raises(UserError, match=r"out\.png: names one file"):
        plan_outputs([a, b], tmp_path / "out.png", "s")
    with pytest.raises(UserError, match=r"out\.png: names one file"):
        plan_outputs([tmp_path], tmp_path / "out.png", "s")
    assert not (tmp_path / "out.png").exists()


def test_plan_out_that_is_an_existing_non_image_file(tmp_path):
    a = _touch_image(tmp_path / "a.png")
    (tmp_path / "results").write_text("a file")
    with pytest.raises(UserError, match=r"results: exists and is not a folder"):
        plan_outputs([a, tmp_path], tmp_path / "results", "s")
