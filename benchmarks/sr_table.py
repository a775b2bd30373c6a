"""The paper's SR table (Johnson et al. 2016, Table 1): PSNR / SSIM / LPIPS of models vs bicubic.

    python benchmarks/sr_table.py [--models bicubic x4-pixel x4] [--datasets Set5 Set14 BSD100]
                                  [--scale 4|8] [--data ../shared/data/bench] [--tile PX] [--json FILE]
                                  [--degradation clean|real] [--jpeg Q] [--seed S] [--denoise 0.5 ...]

Runs :func:`fastpercept.training.eval_sr.eval_sr` for each model on each benchmark and prints a
Markdown table: one row per dataset, one column per model (``PSNR / SSIM / LPIPS``: PSNR in dB
and SSIM on Y with a ``scale``-pixel border, LPIPS v0.1 AlexNet on RGB), beside the reference
figures we have. Model names that are neither shipped nor files are skipped with a note.

``--scale 8`` compares bicubic with the x8 model on BSD100 by default; the shared benches have no
``LR_x8`` files, so LR is made from HR with MATLAB-compatible bicubic on 8-bit images, as the
MATLAB benchmark files were.

Real photos: ``--jpeg 60`` saves each LR as JPEG quality 60, ``--degradation real --seed S`` makes it
with the training pipeline's high-order degradations at fixed seeds (one per image, from ``S``);
``--denoise V ...`` adds a column ``x4 dn=V`` per value: ``x4``'s and ``x4-real``'s weights
interpolated as ``upscale --denoise V`` does (``--denoise-base FILE``: another pair, FILE and its
``-real`` twin beside it).

Reference PSNRs (dB, x4): bicubic from ``../shared/README.md`` (Set5 28.43, Set14 26.09,
BSD100 25.96); SRCNN 30.48 and the paper's l_feat model 27.09 on Set5 (the paper's Table 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fastpercept.errors import UserError
from fastpercept.training.eval_sr import BICUBIC, eval_sr
from fastpercept.models import LoadedModel, resolve_model_path, with_denoise

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bench"

# Reference PSNRs (dB) by (dataset, scale): only the figures we know, nothing filled in.
REFERENCE: dict[tuple[str, int], dict[str, float]] = {
    ("Set5", 4): {"bicubic (ref)": 28.43, "SRCNN (paper)": 30.48, "l_feat (paper)": 27.09},
    ("Set14", 4): {"bicubic (ref)": 26.09},
    ("BSD100", 4): {"bicubic (ref)": 25.96},
}
DENOISE_COLUMN = " dn="  # "x4 dn=0.5": x4 and x4-real interpolated
DEFAULT_MODELS = {4: ["bicubic", "x4-pixel", "x4"], 8: ["bicubic", "x8"]}
DEFAULT_DATASETS = {4: ["Set5", "Set14", "BSD100"], 8: ["BSD100"]}


def available(models: list[str], scale: int) -> tuple[list[str], list[str]]:
    """``(usable, notes)``: ``bicubic``, shipped names and files; a note for each one skipped."""
    usable, notes = [], []
    for m in models:
        if m == BICUBIC:
            usable.append(m)
            continue
        try:
            resolve_model_path(m.partition(DENOISE_COLUMN)[0])
        except UserError as e:
            notes.append(f"skipped {m}: {e}")
            continue
        usable.append(m)
    return usable, notes


def model_of(column: str) -> str | LoadedModel:
    """A column's model: a name or file as it is, ``"NAME dn=V"`` NAME and NAME-real interpolated by V."""
    name, _, value = column.partition(DENOISE_COLUMN)
    return with_denoise(name, float(value)) if value else name


def markdown(results: dict[str, dict[str, dict]], models: list[str], datasets: list[str], scale: int) -> str:
    """Rows: datasets; columns: models (``PSNR / SSIM / LPIPS``) then the reference PSNRs."""
    ref_cols: list[str] = []
    for d in datasets:
        for k in REFERENCE.get((d, scale), {}):
            if k not in ref_cols:
                ref_cols.append(k)
    head = [f"x{scale}", *(f"{m} PSNR / SSIM / LPIPS" for m in models), *(f"{c} PSNR" for c in ref_cols)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for d in datasets:
        cells = [d]
        for m in models:
            r = results.get(m, {}).get(d)
            cells.append("—" if r is None else
                         f"{r['mean']['psnr']:.2f} / {r['mean']['ssim']:.4f} / {r['mean']['lpips']:.4f}")
        ref = REFERENCE.get((d, scale), {})
        cells += [f"{ref[c]:.2f}" if c in ref else "—" for c in ref_cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=None, help="default: bicubic x4-pixel x4 (x8: bicubic x8)")
    p.add_argument("--datasets", nargs="+", default=None, help="default: Set5 Set14 BSD100 (x8: BSD100)")
    p.add_argument("--scale", type=int, default=4, choices=[4, 8])
    p.add_argument("--data", type=Path, default=DATA, help="folder holding the benchmark folders")
    p.add_argument("--tile", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--json", type=Path, default=None, help="also write every result here")
    p.add_argument("--degradation", default="clean", choices=["clean", "real"])
    p.add_argument("--jpeg", type=int, default=None, metavar="Q", help="LR saved as JPEG of quality Q")
    p.add_argument("--seed", type=int, default=0, help="first seed of --degradation real")
    p.add_argument("--denoise", type=float, nargs="+", default=[], metavar="V",
                   help="add x4 interpolated toward x4-real by V (one column per value)")
    p.add_argument("--denoise-base", default=None, metavar="MODEL",
                   help="the model of the --denoise columns, its -real twin beside it (default x4 / x8)")
    a = p.parse_args(argv)
    names = (a.models or DEFAULT_MODELS[a.scale]) + [
        f"{a.denoise_base or f'x{a.scale}'}{DENOISE_COLUMN}{v:g}" for v in a.denoise]
    models, notes = available(names, a.scale)
    datasets = a.datasets or DEFAULT_DATASETS[a.scale]
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    results: dict[str, dict[str, dict]] = {}
    for m in models:
        for d in datasets:
            t = time.perf_counter()
            try:
                r = eval_sr(model_of(m), a.data / d, scale=a.scale, tile=a.tile, device=a.device,
                            precision=a.precision, degradation=a.degradation, jpeg_quality=a.jpeg, seed=a.seed)
            except UserError as e:
                print(f"note: skipped {m} on {d}: {e}", file=sys.stderr)
                continue
            results.setdefault(m, {})[d] = r
            print(f"{m} on {d}: {r['mean']['psnr']:.2f} dB, SSIM {r['mean']['ssim']:.4f}, "
                  f"LPIPS {r['mean']['lpips']:.4f} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    print(markdown(results, models, datasets, a.scale))
    lr = (f"made from HR with MATLAB bicubic, then the high-order degradation at seed {a.seed}" if
          a.degradation == "real" else f"the benchmark's LR_x{a.scale} files, else made from HR with MATLAB bicubic")
    lr += f", saved as JPEG quality {a.jpeg}" if a.jpeg is not None else ""
    print(f"\nPSNR (dB) and SSIM on Y, border {a.scale} px; LPIPS v0.1 (AlexNet) on RGB; outputs quantized "
          f"to 8 bits. LR: {lr}.")
    if notes:
        print("\n" + "\n".join(f"- {n}" for n in notes))
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
