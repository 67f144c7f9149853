"""Every preset and operation keeps shape and dtype, and is reproducible from its seed."""

import numpy as np
import pytest

from vitkd.data.augment import OPERATIONS, PRESETS, AugmentConfigError, CropAugmenter, isolate

CASES = [*PRESETS, *(f"op:{op}" for op in OPERATIONS)]


def _augmenter(case: str) -> CropAugmenter:
    return CropAugmenter(isolate(case[3:]) if case.startswith("op:") else case)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("view", ["global1", "global2", "local"])
def test_shape_dtype_range_and_determinism(tissue_tile: np.ndarray, case: str, view: str) -> None:
    aug = _augmenter(case)
    tile = tissue_tile[:98, :120] if view == "local" else tissue_tile
    out = aug(tile, np.random.default_rng(3), view)
    assert out.shape == tile.shape and out.dtype == np.uint8
    assert 0 < out.std()  # not collapsed to a constant image
    np.testing.assert_array_equal(out, aug(tile, np.random.default_rng(3), view))
    if case != "none":
        draws = [aug(tile, np.random.default_rng(s), view) for s in range(8)]
        assert any(not np.array_equal(draws[0], d) for d in draws[1:])
    else:
        np.testing.assert_array_equal(out, tile)


@pytest.mark.parametrize("case", [c for c in CASES if c not in ("none",)])
def test_operation_changes_the_image(tissue_tile: np.ndarray, case: str) -> None:
    aug = _augmenter(case)
    changed = [
        not np.array_equal(aug(tissue_tile, np.random.default_rng(s)), tissue_tile)
        for s in range(6)
    ]
    assert any(changed)


def test_unknown_view_is_an_error(tissue_tile: np.ndarray) -> None:
    with pytest.raises(AugmentConfigError, match="view"):
        CropAugmenter("dinov2")(tissue_tile, np.random.default_rng(0), "global3")
