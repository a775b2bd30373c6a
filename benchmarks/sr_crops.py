"""Side-by-side SR crops (the paper's Figure 1/6 layout): bicubic | models ... | HR.

    python benchmarks/sr_crops.py --hr ../shared/data/bench/Set14/HR/img_005.png --box 100,60,96 \\
        [--models x4-pixel x4] [--scale 4] [--zoom 3] [--jpeg Q | --degradation real --seed S] \
        -o docs/gallery/sr-crops.png

The LR input is the benchmark's ``LR_x{s}`` file beside ``HR/`` when it exists, else made from HR
with MATLAB-compatible bicubic (as ``eval sr`` does). Each panel is the same ``--box`` (x, y,
side, in HR pixels) of one method's full-image output, enlarged ``--zoom`` times with nearest
neighbour so pixels stay visible, captioned with the method and its PSNR-Y / LPIPS on the whole
image (the figures ``eval sr`` reports). ``--jpeg`` / ``--degradation real`` damage the LR as
``eval sr`` does (real photos); a model ``NAME@V`` is NAME with denoise V (``upscale --denoise``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from fastpercept.runtime.device import resolve_device, resolve_precision
from fastpercept.training.eval_sr import bicubic_upscale, load_sr_pair, score_sr, sr_pairs
from fastpercept.runtime.images import to_pil
from fastpercept.training.lpips import LPIPS
from fastpercept.models import load_model, with_denoise
from fastpercept.runtime.tiling import run_network
from fastpercept.runtime.torch_runner import TorchRunner


def panels(hr_path: Path, models: list[str], scale: int, device: str = "auto",
           precision: str = "auto", degradation: str = "clean", jpeg_quality: int | None = None,
           seed: int = 0) -> list[tuple[str, torch.Tensor, dict[str, float]]]:
    """(label, SR image (1, 3, H, W) in [0, 1] on the CPU, scores) for bicubic, each model and HR;
    the networks run on ``device`` in ``precision`` as ``eval sr`` runs them."""
    pairs, _ = sr_pairs(hr_path.parent.parent, scale)  # the benchmark's own LR file, as eval sr finds it
    lr_path = next((lr for name, _, lr in pairs if name == hr_path.name), None)
    lr, hr = load_sr_pair(hr_path, lr_path, scale, degradation, jpeg_quality, seed)
    lpips = LPIPS("alex")
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    out = []
    for label in ["bicubic", *models]:
        if label == "bicubic":
            sr = bicubic_upscale(lr, scale).clamp(0, 1)
        else:
            # A tensor in gives a tensor back, on the tensor's device (the CPU); the network runs on dev.
            name, _, denoise = label.partition("@")
            model = with_denoise(name, float(denoise)).to(dev.type) if denoise else load_model(name, device=dev.type)
            sr = run_network(TorchRunner(model.net, prec), lr)
        out.append((label, sr, score_sr(sr, hr, scale, lpips)))
    out.append(("HR", hr, {}))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hr", type=Path, required=True, help="HR image of a benchmark folder (DIR/HR/NAME)")
    p.add_argument("--box", required=True, help="x,y,side of the crop in HR pixels")
    p.add_argument("--models", nargs="+", default=["x4-pixel", "x4"])
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--zoom", type=int, default=3)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--jpeg", type=int, default=None, metavar="Q", help="the LR saved as JPEG of quality Q")
    p.add_argument("--degradation", default="clean", choices=["clean", "real"])
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    x, y, side = (int(v) for v in a.box.split(","))
    rows = panels(a.hr, a.models, a.scale, a.device, a.precision, a.degradation, a.jpeg, a.seed)
    caption = 30
    size = side * a.zoom
    sheet = Image.new("RGB", (len(rows) * (size + 4) - 4, size + caption), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, img, scores) in enumerate(rows):
        crop = to_pil(img[0, :, y:y + side, x:x + side].clamp(0, 1)).resize((size, size), Image.NEAREST)
        sheet.paste(crop, (i * (size + 4), caption))
        name = Path(label).stem if label.endswith(".safetensors") else label
        text = name if not scores else f"{name}\n{scores['psnr']:.2f} dB, LPIPS {scores['lpips']:.3f}"
        draw.multiline_text((i * (size + 4) + 2, 2), text, fill="black")
        print(f"{label:<12} " + (f"PSNR-Y {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.4f}, "
                                 f"LPIPS {scores['lpips']:.4f}" if scores else "(reference)"))
    a.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(a.output)
    print(a.output)


if __name__ == "__main__":
    main()
