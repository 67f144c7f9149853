"""Crop-scale and augmentation-strength curriculum: pure functions of the step, through the dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitkd.data.collate import MaskConfig, MultiCropCollate
from vitkd.data.curriculum import CropCurriculum, StepCurriculum, bind_curriculum
from vitkd.data.multicrop import MultiCrop
from vitkd.data.multicrop_dataset import MultiCropDataset, draw_seed
from vitkd.distill.config import Schedule

CROPS = ((0.32, 1.0), (0.05, 0.32))
N, PER_STEP, TOTAL = 10, 4, 100


def tiles() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = np.array([200, 120, 180], dtype=np.float64)  # pinkish, textured
    return [
        np.clip(base + rng.normal(0, 30, (64, 64, 3)), 0, 255).astype(np.uint8) for _ in range(N)
    ]


def draw_at(step: int, item: int = 3) -> int:
    """The draw id of `item` at the first position of optimiser step `step`."""
    return step * PER_STEP * N + item


def test_values_at_given_steps() -> None:
    c = StepCurriculum(
        CropCurriculum(
            global_scale_min=Schedule("linear", 0.6, 0.32, stop=0.5),
            local_scale_max=Schedule("cosine", 0.2, 0.4, begin=0.5),
            augment_p=Schedule("linear", 0.0, 1.0),
        ),
        CROPS,
        N,
        PER_STEP,
        TOTAL,
    )
    assert c.values(0) == {"global_scale": (0.6, 1.0), "local_scale": (0.05, 0.2), "augment_p": 0.0}
    mid = c.values(25)
    assert mid["global_scale"][0] == pytest.approx(0.46)
    assert mid["augment_p"] == pytest.approx(0.25)
    assert c.values(50)["global_scale"] == (0.32, 1.0)
    assert c.values(75)["local_scale"][1] == pytest.approx(0.3)
    assert c.values(100) == {
        "global_scale": (0.32, 1.0),
        "local_scale": (0.05, 0.4),
        "augment_p": 1.0,
    }


def test_step_of_a_draw_id_is_its_position_over_the_draws_per_step() -> None:
    c = StepCurriculum(CropCurriculum(), CROPS, N, PER_STEP, TOTAL)
    assert [c.step(draw_at(s, item)) for s in (0, 1, 7) for item in (0, 9)] == [0, 0, 1, 1, 7, 7]
    assert c.step(PER_STEP * N - 1) == 0 and c.step(PER_STEP * N) == 1


def test_min_bound_is_clamped_to_the_max() -> None:
    c = StepCurriculum(
        CropCurriculum(local_scale_min=Schedule("constant", 0.5)), CROPS, N, PER_STEP, TOTAL
    )
    assert c.values(3)["local_scale"] == (0.32, 0.32)


def test_schedule_values_are_checked() -> None:
    with pytest.raises(ValueError, match="global_scale_min"):
        CropCurriculum(global_scale_min=Schedule("linear", 0.0, 0.3))
    assert CropCurriculum(augment_p={"kind": "linear", "start": 0.0, "end": 1.0}).active()
    assert not CropCurriculum().active()


def test_bind_stretches_over_max_steps() -> None:
    class _Trainer:
        accumulate_grad_batches, max_steps, max_epochs = 2, 40, -1

    bound = bind_curriculum(
        CropCurriculum(augment_p=Schedule("linear", 0.0, 1.0)), CROPS, _Trainer(), N, 64, 4, 2
    )
    assert (bound.draws_per_step, bound.total_steps) == (16, 40)
    assert bind_curriculum(CropCurriculum(), CROPS, None, N, 64, 4, 1) is None


def _dataset(curriculum: StepCurriculum | None) -> MultiCropDataset:
    crop = MultiCrop(64, 32, 2, 2, augment="pathology", teacher_view="clean")
    return MultiCropDataset(tiles(), crop, seed=0, curriculum=curriculum)


def test_dataset_follows_the_step_of_each_draw() -> None:
    c = StepCurriculum(
        CropCurriculum(
            global_scale_min=Schedule("linear", 0.9, 0.32),
            augment_p=Schedule("linear", 0.0, 1.0),
        ),
        CROPS,
        N,
        PER_STEP,
        TOTAL,
    )
    ds = _dataset(c)
    early = ds[draw_at(0)]
    # strength 0: the student's global crops are the geometry alone, i.e. the clean teacher view
    assert torch.equal(early["global"], early["teacher"])
    assert ds.transform.global_scale == (0.9, 1.0)
    late = ds[draw_at(TOTAL)]
    assert not torch.equal(late["global"], late["teacher"])
    assert ds.transform.global_scale == (0.32, 1.0)
    # a draw's crops depend on its id alone: the same after other draws (a resumed worker)
    again = _dataset(c)[draw_at(0)]
    assert all(torch.equal(early[k], again[k]) for k in ("global", "local", "teacher"))


def test_no_curriculum_keeps_the_crops_bit_for_bit() -> None:
    ds = _dataset(None)
    reference = MultiCrop(64, 32, 2, 2, augment="pathology", teacher_view="clean")
    for draw in (0, 7, draw_at(5, 2)):
        reference.reseed(draw_seed(0, draw))
        old = reference(tiles()[draw % N])
        new = ds[draw]
        assert all(torch.equal(old[k], new[k]) for k in ("global", "local", "teacher"))
        assert (new["position"], new["draw"]) == divmod(draw, N)


def test_collate_carries_tile_ids_and_positions() -> None:
    ds = _dataset(None)
    batch = MultiCropCollate(MaskConfig(patch_size=16), 64)([ds[d] for d in (3, 25, 41)])
    assert batch["draw"].dtype == torch.int64
    assert batch["draw"].tolist() == [3, 5, 1]
    assert batch["position"].tolist() == [0, 2, 4]
