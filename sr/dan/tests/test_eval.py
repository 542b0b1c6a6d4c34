import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sr.dan.eval import metrics, tile_starts, upscale


def test_tile_starts_cover_the_image():
    for n in (64, 65, 100, 300):
        s = tile_starts(n, 64, 8)
        assert s[0] == 0 and s[-1] == n - 64
        assert all(b - a <= 56 for a, b in zip(s, s[1:]))


def test_tiled_upscale_of_a_local_operator_is_seamless():
    nearest = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")
    img = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)
    out = upscale(nearest, img, 2, 32, 8)
    ref = np.repeat(np.repeat(img, 2, 0), 2, 1) / 255.0
    assert out.shape == (140, 180, 3)
    assert np.abs(out - ref).max() < 1e-6


def test_small_image_pads_or_errors():
    nearest = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")
    img = np.zeros((20, 40, 3), np.uint8)
    assert upscale(nearest, img, 2, 32).shape == (40, 80, 3)
    with pytest.raises(ValueError, match="smaller than the model's 32x32 tile"):
        upscale(nearest, img, 2, 32, pad_small=False)


def test_metrics_identical_and_noisy():
    img = (np.random.default_rng(1).random((40, 40, 3)) * 255).astype(np.uint8)
    p, s = metrics(img, img, 2)
    assert p == float("inf") and abs(s - 1) < 1e-9
    noisy = np.clip(img.astype(int) + 5, 0, 255).astype(np.uint8)
    p, s = metrics(noisy, img, 2)
    assert 20 < p < 60 and s < 1
