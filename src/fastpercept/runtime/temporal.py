"""Temporal consistency of a transformed clip: the stable video mode (:class:`StableFrames`) and
its measure, the warping error of Lai et al. (ECCV 2018; :func:`warping_error`).

Warping-error conventions (those of Lai et al.'s evaluation code, "Learning Blind Video Temporal Consistency"):

- Optical flow is computed on the *input* frames (here OpenCV's DIS flow, medium preset, on
  8-bit gray), from frame ``t`` to frame ``t - 1``; the output frame ``t - 1`` is warped to ``t``
  along it (bilinear).
- Occluded pixels are masked out by forward-backward consistency (Sundaram et al. 2010, the
  test of Ruder et al. 2016): ``|f + b(x + f)|^2 > 0.01 (|f|^2 + |b(x + f)|^2) + 0.5``; pixels
  whose flow leaves the frame are masked out too.
- The error of a pair is the squared RGB distance (summed over the three channels, values in
  [0, 1]) averaged over the unmasked pixels; the clip's error is the mean over its pairs.

Optical flow comes from OpenCV (``opencv-python-headless``), imported on first use.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np


def _gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.remap(image, x, y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def _track(dis, g_prev: np.ndarray, g_now: np.ndarray, gx: np.ndarray, gy: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, visible)``: where each pixel of frame ``now`` was in frame ``prev`` (flow on the
    gray inputs), and whether it was visible there (forward-backward consistent, inside the frame)."""
    h, w = g_now.shape
    to_prev = dis.calc(g_now, g_prev, None)  # pixel x of frame now sits at x + to_prev(x) in prev
    to_now = dis.calc(g_prev, g_now, None)
    x, y = gx + to_prev[..., 0], gy + to_prev[..., 1]
    back = _sample(to_now, x, y)  # the reverse flow where x lands
    gap = ((to_prev + back) ** 2).sum(-1)
    occluded = gap > 0.01 * ((to_prev ** 2).sum(-1) + (back ** 2).sum(-1)) + 0.5
    outside = (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)
    return x, y, ~(occluded | outside)


# The previous frame's share, where it is visible, in the stable mode's two blends (measured:
# benchmarks/video_stability.py and the README's video table).
STABLE_INPUT_WEIGHT = 0.8
STABLE_OUTPUT_WEIGHT = 0.1


def _carry(previous: np.ndarray, track: tuple[np.ndarray, np.ndarray, np.ndarray], weight: float,
           current: np.ndarray) -> np.ndarray:
    """``current`` blended with ``previous`` carried along ``track``, where visible: a share ``weight``."""
    x, y, visible = track
    w = (weight * visible.astype(np.float32))[..., None]
    return current + w * (_sample(previous, x, y) - current)


class StableFrames:
    """The stable video mode: a clip's frames calmed along their motion before the network, and
    its outputs settled after it.

    Stylized frame by frame, a clip flickers: the network answers each frame's noise (sensor,
    codec) and small changes with different strokes. Optical flow (OpenCV DIS, fast preset, on
    the gray input frames, occlusions masked by forward-backward consistency) follows every
    pixel back to the previous frame; where it was visible there:

    - :meth:`calm`: the network's input is ``(1 - input_weight) * frame + input_weight *
      previous calmed frame`` carried along the flow, a temporal denoising of the input (the
      network then sees nearly the same pixels where the scene stays);
    - :meth:`settle`: the output is ``(1 - output_weight) * output + output_weight * previous
      settled output`` carried along the flow.

    Calming alone keeps every frame a full stylization; a light settling removes most of the
    rest. (Blending outputs alone, strongly enough to matter, washes the style out; instance-norm
    statistics smoothed over time barely helped: README, video table.)

    Call :meth:`calm` on the frames in order, and :meth:`settle` on their outputs in the same
    order (batches are fine: calm a batch, run it, settle it).
    """

    def __init__(self, input_weight: float = STABLE_INPUT_WEIGHT, output_weight: float = STABLE_OUTPUT_WEIGHT) -> None:
        import cv2

        for name, w in (("input_weight", input_weight), ("output_weight", output_weight)):
            if not 0.0 <= w < 1.0:
                raise ValueError(f"{name} must be in [0, 1), not {w}")
        self.input_weight, self.output_weight = input_weight, output_weight
        # The fast preset at run time; the warping error measures with the medium one.
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._gray: np.ndarray | None = None
        self._calmed: np.ndarray | None = None
        self._settled: np.ndarray | None = None
        self._tracks: deque = deque()  # per calmed frame, in order, until its output is settled
        self._grid: tuple[np.ndarray, np.ndarray] | None = None  # pixel coordinates, made once per clip

    def calm(self, frame: np.ndarray) -> np.ndarray:
        """The network's input for the next frame: (H, W, 3) uint8 RGB -> (H, W, 3) float32 in [0, 1]."""
        gray = _gray(frame)
        current = frame.astype(np.float32) / 255
        track = None
        # OpenCV's DIS flow refuses frames under 12 px on a side and crashes on wide ones under 32 px
        # tall (measured: 128x16, 640x24): such a frame stands alone.
        if self._gray is not None and self._gray.shape == gray.shape and min(gray.shape) >= 32:
            if self._grid is None or self._grid[0].shape != gray.shape:
                self._grid = _grid(*gray.shape)
            track = _track(self._dis, self._gray, gray, *self._grid)
            current = _carry(self._calmed, track, self.input_weight, current)
        self._gray, self._calmed = gray, current
        self._tracks.append(track)
        return current

    def settle(self, output: np.ndarray) -> np.ndarray:
        """The written frame for the oldest calmed frame's output: (H, W, 3) float in [0, 1], same size."""
        track = self._tracks.popleft()
        output = np.asarray(output, dtype=np.float32)
        if track is not None and self._settled is not None and self._settled.shape == output.shape:
            output = _carry(self._settled, track, self.output_weight, output)
        self._settled = output
        return output


def warping_error(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> float:
    """The warping error of ``outputs`` given the clip ``inputs`` they were made from.

    Args:
        inputs: T frames (H, W, 3) uint8 RGB: where the motion is measured.
        outputs: T frames (H, W, 3) float in [0, 1], the same size as the inputs.
    Returns:
        The mean over the T - 1 consecutive pairs of the masked mean squared RGB difference
        between output ``t`` and output ``t - 1`` warped to it (0: perfectly consistent).
    """
    import cv2

    if len(inputs) != len(outputs) or len(inputs) < 2:
        raise ValueError(f"need two or more frames, as many outputs as inputs ({len(inputs)} and {len(outputs)})")
    gx, gy = _grid(*inputs[0].shape[:2])
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    errors = []
    for t in range(1, len(inputs)):
        x, y, keep = _track(dis, _gray(inputs[t - 1]), _gray(inputs[t]), gx, gy)
        warped = _sample(np.asarray(outputs[t - 1], dtype=np.float32), x, y)
        diff = ((np.asarray(outputs[t], dtype=np.float32) - warped) ** 2).sum(-1)
        errors.append(float(diff[keep].mean()) if keep.any() else 0.0)
    return float(np.mean(errors))
