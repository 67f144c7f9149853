"""Device colour jitter hue: torchvision's HSV hue, and the CPU jitter's image on the same draw."""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from vitkd.data.augment.color import color_jitter as cpu_color_jitter
from vitkd.data.gpu import ops


def _tiles(k: int, seed: int = 0) -> np.ndarray:
    """Smooth colourful uint8 tiles (K, H, W, 3): hue ramps, saturated and grey areas."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:48] / 47.0
    base = np.stack([xx, yy, 1 - xx * yy], axis=-1)
    tiles = [
        np.clip(base * rng.uniform(0.3, 1.0, 3) + rng.uniform(0, 0.3, 3), 0, 1) for _ in range(k)
    ]
    out = (np.stack(tiles) * 255).round().astype(np.uint8)
    out[:, :8, :8] = 128  # a grey patch: no hue to move
    return out


@pytest.mark.parametrize("shift", [-0.5, -0.23, -0.1, 0.0, 0.05, 0.1, 0.37, 0.5])
def test_adjust_hue_equals_torchvision(shift: float) -> None:
    x = torch.from_numpy(_tiles(3)).permute(0, 3, 1, 2).float() / 255
    shifts = torch.tensor([shift, shift / 2, -shift / 3])
    got = ops.adjust_hue(x, shifts)
    for i, s in enumerate(shifts.tolist()):
        torch.testing.assert_close(got[i], TF.adjust_hue(x[i], s), atol=2e-6, rtol=0)


def test_device_jitter_matches_cpu_jitter_on_the_same_draw() -> None:
    tiles = _tiles(4, seed=1)
    factors = np.array(
        [[1.0, 1.0, 1.0, 0.1], [0.9, 1.2, 0.8, -0.1], [1.1, 0.8, 1.3, 0.25], [1.0, 1.0, 1.0, -0.4]]
    )
    orders = np.array([[3, 0, 1, 2], [0, 3, 2, 1], [2, 1, 0, 3], [1, 2, 3, 0]])
    cpu = np.stack(
        [cpu_color_jitter(t, *f, order=o) for t, f, o in zip(tiles, factors, orders, strict=True)]
    ).astype(np.float64)
    x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255
    dev = ops.color_jitter(x, torch.from_numpy(factors).float(), torch.from_numpy(orders))
    dev = dev.permute(0, 2, 3, 1).numpy() * 255
    # the CPU path is uint8 (OpenCV HSV rounding); the YIQ rotation was ~20 levels off at 0.1
    diff = np.abs(dev - cpu).mean(axis=(1, 2, 3))
    assert diff.max() < 2.0, diff
