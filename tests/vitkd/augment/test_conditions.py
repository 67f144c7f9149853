"""The condition simulator: named conditions, deterministic per (tile, condition), all distinct."""

import numpy as np
import pytest

from vitkd.data.augment import AugmentConfigError, ConditionSimulator, ScannerProfile, StainPreset


def test_default_grid_is_6_stains_by_4_scanners() -> None:
    sim = ConditionSimulator()
    conds = sim.conditions
    assert len(conds) == len(sim) == 24
    assert [c.id for c in conds] == list(range(24))
    assert conds[0].name == "reference/reference"
    assert len({c.name for c in conds}) == 24
    assert sim.condition(5).name == conds[5].name


def test_deterministic_per_tile_and_condition(tissue_tile: np.ndarray) -> None:
    sim = ConditionSimulator()
    other = ConditionSimulator()
    for cid in range(len(sim)):
        a = sim.simulate(tissue_tile, cid)
        assert a.shape == tissue_tile.shape and a.dtype == np.uint8
        np.testing.assert_array_equal(a, sim.simulate(tissue_tile.copy(), cid))
        np.testing.assert_array_equal(a, other.simulate(tissue_tile, cid))


def test_reference_condition_is_the_tile_and_conditions_differ(tissue_tile: np.ndarray) -> None:
    sim = ConditionSimulator()
    outs = [sim.simulate(tissue_tile, c.id) for c in sim.conditions]
    np.testing.assert_array_equal(outs[0], tissue_tile)
    for i in range(len(outs)):
        for j in range(i + 1, len(outs)):
            assert np.abs(outs[i].astype(int) - outs[j]).mean() > 0.3, (i, j)


def test_noise_differs_between_tiles() -> None:
    sim = ConditionSimulator(stains=1, scanners=[ScannerProfile("noisy", noise_std=5.0)])
    flat_a = np.full((32, 32, 3), 180, np.uint8)
    flat_b = flat_a.copy()
    flat_b[0, 0] = 181
    na = sim.simulate(flat_a, 0).astype(int) - flat_a
    nb = sim.simulate(flat_b, 0).astype(int) - flat_b
    assert not np.array_equal(na[1:], nb[1:])


def test_custom_presets_and_bad_ids() -> None:
    sim = ConditionSimulator(stains=[StainPreset("pink", target="e_heavy")], scanners=2)
    assert [c.name for c in sim.conditions] == ["pink/reference", "pink/soft_focus"]
    with pytest.raises(AugmentConfigError, match="out of range"):
        sim.condition(2)
    with pytest.raises(AugmentConfigError, match="stains"):
        ConditionSimulator(stains=99)
    with pytest.raises(ValueError, match="uint8"):
        sim.simulate(np.zeros((8, 8, 3), np.float32), 0)
