"""Device-path parameters: a re-staining config without the tile's stain matrix is an error."""

import numpy as np
import pytest

from vitkd.data.augment.macenko import REFERENCE_STAIN_MATRIX
from vitkd.data.augment.presets import isolate, resolve_augment
from vitkd.data.gpu.params import sample_params


@pytest.mark.parametrize("operation", ["stain_preset", "macenko"])
def test_restaining_without_a_matrix_is_an_error_not_a_skip(operation: str) -> None:
    config = isolate(operation)
    with pytest.raises(ValueError, match=r"re-stains.*estimate_stain_matrix"):
        sample_params(config, np.random.default_rng(0), "global1")
    drawn = sample_params(config, np.random.default_rng(0), "global1", REFERENCE_STAIN_MATRIX)
    assert not np.allclose(drawn["od_matrix"], np.eye(3))


def test_configs_that_do_not_restain_need_no_matrix() -> None:
    for name in ("none", "light", "dinov2"):
        sample_params(resolve_augment(name), np.random.default_rng(0), "local")
    assert sample_params(None, np.random.default_rng(0), "local") == {}
