"""The fast 5x5 median of tissue detection equals scipy's, border included."""

import numpy as np
import pytest
from scipy import ndimage

from slides.tissue import median5


@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (5, 5), (17, 9), (150, 211)])
def test_median5_equals_ndimage(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(sum(shape)).integers(0, 256, size=shape, dtype=np.uint8)
    expected = ndimage.median_filter(image, size=5)
    got = median5(image)
    assert got.dtype == np.uint8 and got.shape == image.shape
    np.testing.assert_array_equal(got, expected)
