"""The warping error (fastpercept.runtime.temporal) and the stable video mode (SmoothedNormStats)."""

import numpy as np
import pytest

from fastpercept.runtime.temporal import warping_error

pytest.importorskip("cv2")


def _moving_clip(frames=6, step=2, h=64, w=96):
    rng = np.random.default_rng(0)
    scene = (np.kron(rng.random((h // 8, (w + frames * step) // 8 + 1, 3)), np.ones((8, 8, 1))) * 255)
    scene = np.clip(scene + rng.random(scene.shape) * 30, 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(scene[:h, t * step:t * step + w]) for t in range(frames)]


def test_an_output_that_moves_with_its_input_has_almost_no_warping_error():
    clip = _moving_clip()
    consistent = [f.astype(np.float32) / 255 for f in clip]
    rng = np.random.default_rng(1)
    flicker = [np.clip(f + rng.normal(0, 0.05, f.shape), 0, 1).astype(np.float32) for f in consistent]
    calm, noisy = warping_error(clip, consistent), warping_error(clip, flicker)
    assert calm < 2e-3
    assert noisy > 5 * calm and noisy > 0.01  # per-frame noise of 0.05: about 3 x 2 x 0.05^2 = 0.015


def test_a_static_clip_with_a_static_output_scores_zero():
    frame = _moving_clip(frames=1)[0]
    assert warping_error([frame] * 3, [frame.astype(np.float32) / 255] * 3) == pytest.approx(0, abs=1e-7)


def test_warping_error_needs_two_matching_sequences():
    frame = _moving_clip(frames=1)[0]
    with pytest.raises(ValueError):
        warping_error([frame], [frame / 255])


def _noisy(clip, sigma=12, seed=2):
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in clip]


def test_calming_a_noisy_static_clip_removes_most_of_its_noise():
    from fastpercept.runtime.temporal import StableFrames

    scene = _moving_clip(frames=1)[0]
    clip = _noisy([scene] * 16)
    stable = StableFrames(input_weight=0.9, output_weight=0.0)
    calmed = [stable.calm(f) for f in clip]
    assert np.array_equal(calmed[0], clip[0].astype(np.float32) / 255)  # nothing to carry yet
    noise_in = np.std([f.astype(np.float32) / 255 for f in clip[8:]], axis=0).mean()
    noise_out = np.std(calmed[8:], axis=0).mean()
    assert noise_out < 0.5 * noise_in


def test_settling_blends_outputs_in_the_order_they_were_calmed():
    from fastpercept.runtime.temporal import StableFrames

    scene = _moving_clip(frames=1)[0]
    stable = StableFrames(input_weight=0.0, output_weight=0.5)
    for f in (scene, scene, scene):
        stable.calm(f)
    first = stable.settle(np.zeros((64, 96, 3), np.float32))
    second = stable.settle(np.ones((64, 96, 3), np.float32))
    third = stable.settle(np.ones((64, 96, 3), np.float32))
    assert first.max() == 0  # the first frame stands alone
    assert np.allclose(second, 0.5, atol=1e-3)  # half of the previous output, where visible (all of it)
    assert np.allclose(third, 0.75, atol=1e-3)
    with pytest.raises(IndexError):  # more outputs than calmed frames is a caller's bug
        stable.settle(np.ones((64, 96, 3), np.float32))


def test_the_stable_mode_stylizes_a_clip_with_less_flicker_than_per_frame(tmp_path):
    import av

    import fastpercept

    clip = _noisy(_moving_clip(frames=10, step=1), sigma=6)
    src = tmp_path / "clip.mp4"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "0"})  # near-lossless: the noise stays
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv444p"
        for f in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)

    def frames(path):
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]

    errors = {}
    for stable in (False, True):
        dst = fastpercept.stylize(src, "mosaic", output=tmp_path / f"out-{stable}.mp4", stable=stable, crf=0,
                                  precision="fp32", backend="torch", device="cpu")
        outputs = [f.astype(np.float32) / 255 for f in frames(dst)]
        assert len(outputs) == 10
        errors[stable] = warping_error(frames(src), outputs)
    assert errors[True] < 0.8 * errors[False], errors
