"""Training data: random crops from a folder tree of photos, reproducible per sample.

Every sample is addressed by its *global index* (``step * batch_size + k``). The file it comes
from and its crop are functions of ``(seed, global index)`` alone, so a resumed run sees exactly
the data an uninterrupted one would, with any number of loader workers.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from .degradation import DegradationConfig, degrade_real
from ..errors import UserError
from ..runtime.images import load_image, to_uint8
from ..runtime.listing import list_images
from .resize import degrade

log = logging.getLogger(__name__)


def scan_image_files(root: str | Path, min_side: int = 0) -> tuple[list[Path], int]:
    """Image files under ``root`` whose headers Pillow can read and whose shorter side is at
    least ``min_side``; returns ``(files, skipped)``.

    Only headers are read, never whole files (measured on 100,000 JPEGs, warm page cache: 6.1 s
    to list and read headers, 7.6 s before with a full ``verify()`` of each; on a cold disk
    ``verify()`` would read every byte): a file whose data turns out corrupt past its header is
    skipped, and logged once, when :class:`RandomCrops` first meets it.
    """
    files, skipped = [], 0
    for path in list_images([root]):
        try:
            with Image.open(path) as im:
                small = min(im.size) < min_side
        except Exception:  # noqa: BLE001 - any unreadable header: not a training image
            skipped += 1
            continue
        if small:
            skipped += 1
        else:
            files.append(path)
    if not files:
        detail = f" of at least {min_side} px" if min_side else ""
        raise UserError(f"{root}: no readable training images{detail}")
    return files, skipped


def _resize_shorter(img: torch.Tensor, shorter: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    scale = shorter / min(h, w)
    size = (max(shorter, round(h * scale)), max(shorter, round(w * scale)))
    return F.interpolate(img, size=size, mode="bilinear", antialias=True, align_corners=False)


def center_crop(img: torch.Tensor, size: int) -> torch.Tensor:
    """The center ``size`` x ``size`` square after resizing the shorter side to ``size``.

    The same resizing as :class:`RandomCrops` at its smallest scale, so content is seen at the
    scale style networks are trained on. ``img`` (1, 3, H, W) float in [0, 1] -> (1, 3, size, size).
    """
    img = _resize_shorter(img, size)
    h, w = img.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return img[..., top:top + size, left:left + size].contiguous()


class RandomCrops(Dataset):
    """Square crops for style training: shorter side resized to ``U[size, 1.25 size]``, a random
    ``size`` x ``size`` crop, a random horizontal flip.

    ``dataset[i]`` is the (3, size, size) float32 tensor in [0, 1] for global sample index ``i``
    (any non-negative int; epochs are successive seeded permutations of the files). A
    ``transform(image (1, 3, H, W), rng)`` replaces the crop (see :class:`SRPair`).
    """

    def __init__(self, files: Sequence[Path], size: int, seed: int,
                 transform: Callable[[torch.Tensor, np.random.Generator], Any] | None = None) -> None:
        self.files = list(files)
        self.size = size
        self.seed = seed
        self.transform = transform or self.random_crop
        self.failed: set[Path] = set()

    def __len__(self) -> int:  # nominal; indices past it wrap into later epochs
        return len(self.files)

    def _file_for(self, index: int) -> Path:
        epoch, pos = divmod(index, len(self.files))
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.files))
        return self.files[order[pos]]

    def random_crop(self, img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        shorter = int(rng.integers(self.size, math.ceil(self.size * 1.25) + 1))
        img = _resize_shorter(img, shorter)
        h, w = img.shape[-2:]
        top, left = int(rng.integers(0, h - self.size + 1)), int(rng.integers(0, w - self.size + 1))
        img = img[..., top:top + self.size, left:left + self.size]
        if rng.random() < 0.5:
            img = img.flip(-1)
        return img[0].contiguous()


    def __getitem__(self, index: int) -> Any:
        rng = np.random.default_rng([self.seed, 1, index])
        # A file that fails to decode (truncated past its header) is replaced, deterministically,
        # by the next one in the same epoch's order.
        for attempt in range(len(self.files)):
            path = self._file_for(index + attempt)
            try:
                img = load_image(path).rgb
            except UserError:
                if path not in self.failed:
                    self.failed.add(path)
                    log.warning("skipping unreadable training image %s", path)
                continue
            return self.transform(img, rng)
        raise UserError("no training image could be decoded")


class RoundRobinLabels(Dataset):
    """``dataset[i]`` with a label: ``(item, label)``, the label ``(i // batch_size) % labels``.

    Every sample of a step's batch (of one process's share, under ``torchrun``) has the same
    label, and successive steps cycle through the labels: a multi-style run trains its styles
    in turn, each on the same number of steps, and a resumed run continues the cycle exactly.
    """

    def __init__(self, dataset: Dataset, labels: int, batch_size: int) -> None:
        self.dataset, self.labels, self.batch_size = dataset, labels, batch_size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        return self.dataset[index], torch.tensor((index // self.batch_size) % self.labels)


class SampleRange(torch.utils.data.Sampler[int]):
    """The global sample indices of steps ``first_step .. last_step - 1`` for one process.

    Step ``t`` of a run with ``world`` processes uses samples ``t * world * batch_size`` up to
    ``(t + 1) * world * batch_size``; process ``rank`` takes its contiguous ``batch_size`` share.
    One process therefore sees the same samples as ``world`` processes together, and a resumed
    run starts exactly where the interrupted one stopped.
    """

    def __init__(self, first_step: int, last_step: int, batch_size: int, rank: int = 0, world: int = 1) -> None:
        self.first_step, self.last_step = first_step, last_step
        self.batch_size, self.rank, self.world = batch_size, rank, world

    def __iter__(self):
        for t in range(self.first_step, self.last_step):
            base = (t * self.world + self.rank) * self.batch_size
            yield from range(base, base + self.batch_size)

    def __len__(self) -> int:
        return max(0, self.last_step - self.first_step) * self.batch_size


# Real degradations see this much more of the photo on every side of the HR patch (HR pixels,
# where the photo has it): the blur and the final sinc filter read real neighbours instead of
# mirrored ones, and the 8x8 JPEG grid falls at any offset of the LR patch (Real-ESRGAN
# degrades 400 px and then crops its 256 px patches for the same reasons).
REAL_MARGIN = 16


@dataclass(frozen=True)
class SRPair:
    """A transform for :class:`RandomCrops` giving super-resolution pairs ``(lr, hr)``.

    hr: a random ``patch_size`` crop (no resizing: that would destroy the detail SR learns),
    under one of the 8 flips/rotations. lr, with ``degradation`` None (clean):
    :func:`fastpercept.training.resize.degrade` of it — Gaussian blur ``blur_sigma`` (0: none), then
    MATLAB-compatible bicubic by ``1/scale``. With a
    :class:`~fastpercept.training.degradation.DegradationConfig`: Real-ESRGAN's high-order degradation
    (:func:`~fastpercept.training.degradation.degrade_real`) of a crop up to :data:`REAL_MARGIN` larger on
    every side, cut to the patch afterwards (``blur_sigma`` unused). Both quantized to 8 bits.
    Shapes (3, p/scale, p/scale) and (3, p, p), float32 in [0, 1].

    Every random choice comes from the ``rng`` of the call (one per sample): a plain, picklable
    object, so loader workers make the same pairs as the main process.
    """

    patch_size: int
    scale: int
    blur_sigma: float
    degradation: DegradationConfig | None = None

    def __post_init__(self) -> None:
        if self.patch_size % self.scale:
            raise UserError(f"--patch-size {self.patch_size} is not a multiple of the scale {self.scale}")

    def __call__(self, img: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        p, s = self.patch_size, self.scale
        margin = REAL_MARGIN if self.degradation is not None else 0
        h, w = img.shape[-2:]
        # The crop: the patch plus up to ``margin`` per side, in whole LR pixels (p alone when clean).
        crop_h, crop_w = (p + (min(n, p + 2 * margin) - p) // s * s for n in (h, w))
        top, left = int(rng.integers(0, h - crop_h + 1)), int(rng.integers(0, w - crop_w + 1))
        hr = img[..., top:top + crop_h, left:left + crop_w]
        k = int(rng.integers(0, 8))
        hr = torch.rot90(hr, k % 4, dims=(-2, -1))
        if k >= 4:
            hr = hr.flip(-1)
        if self.degradation is None:
            # LR inputs at test time are 8-bit files: train on the same quantized levels.
            lr = to_uint8(degrade(hr, s, self.blur_sigma)).float() / 255
            return lr[0].contiguous(), hr[0].contiguous()
        lr = degrade_real(hr, s, rng, self.degradation)
        # The patch at a random whole-LR-pixel offset inside the degraded crop.
        y, x = (int(rng.integers(0, (n - p) // s + 1)) for n in hr.shape[-2:])
        lr = lr[..., y:y + p // s, x:x + p // s]
        hr = hr[..., y * s:y * s + p, x * s:x * s + p]
        return lr[0].contiguous(), hr[0].contiguous()
