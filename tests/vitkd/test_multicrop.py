"""MultiCrop: shapes, determinism, and the teacher_view semantics."""

import dataclasses
import os
from pathlib import Path

import numpy as np
import openslide
import pytest
import torch

from vitkd.data.augment import PRESETS, AugmentConfigError
from vitkd.data.multicrop import MultiCrop

SAMPLE = Path(__file__).resolve().parents[2] / "slides" / "samples" / "CMU-1-Small-Region.svs"


@pytest.fixture(scope="module")
def tile() -> np.ndarray:
    slide = openslide.OpenSlide(str(SAMPLE))
    try:
        return np.asarray(slide.read_region((700, 1100), 0, (256, 256)).convert("RGB"))
    finally:
        slide.close()


def _coordinate_image(h: int = 180, w: int = 240) -> np.ndarray:
    # R encodes x, G encodes y, B constant: any crop+resize keeps R monotone along rows.
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), np.full_like(xx, 90)], -1)
    return img.astype(np.uint8)


def _equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in ("global", "local", "teacher"))


@pytest.mark.parametrize(("n_global", "n_local"), [(2, 8), (2, 0), (1, 3)])
def test_shapes_dtypes_contiguity(tile: np.ndarray, n_global: int, n_local: int) -> None:
    out = MultiCrop(n_global=n_global, n_local=n_local, seed=0)(tile)
    assert out["global"].shape == (n_global, 3, 224, 224)
    assert out["teacher"].shape == (n_global, 3, 224, 224)
    assert out["local"].shape == (n_local, 3, 98, 98)
    for v in out.values():
        assert v.dtype == torch.uint8 and v.is_contiguous()


def test_small_image_is_upscaled() -> None:
    small = _coordinate_image(60, 50)
    out = MultiCrop(augment="none", seed=1)(small)
    assert out["global"].shape == (2, 3, 224, 224) and out["local"].shape == (8, 3, 98, 98)


@pytest.mark.parametrize("augment", ["none", "dinov2", "pathology"])
def test_same_seed_same_output_different_seed_different(tile: np.ndarray, augment: str) -> None:
    a = MultiCrop(augment=augment, seed=7)(tile)
    b = MultiCrop(augment=augment, seed=7)(tile)
    c = MultiCrop(augment=augment, seed=8)(tile)
    assert _equal(a, b)
    assert not torch.equal(a["global"], c["global"])


def test_reseed_replays_the_stream(tile: np.ndarray) -> None:
    mc = MultiCrop(seed=3)
    first = mc(tile)
    second = mc(tile)
    assert not torch.equal(first["global"], second["global"])
    mc.reseed(3)
    assert _equal(mc(tile), first)


def test_forked_worker_gets_its_own_stream(tile: np.ndarray) -> None:
    mc = MultiCrop(seed=3)
    reference = MultiCrop(seed=3)(tile)
    mc._pid = os.getpid() + 1  # what a forked DataLoader worker sees: a different process id
    assert not torch.equal(mc(tile)["global"], reference["global"])


def test_teacher_same_is_the_student_view(tile: np.ndarray) -> None:
    out = MultiCrop(augment="pathology", teacher_view="same", seed=2)(tile)
    assert torch.equal(out["teacher"], out["global"])


@pytest.mark.parametrize("augment", ["dinov2", "pathology"])
def test_teacher_clean_is_the_plain_crop(tile: np.ndarray, augment: str) -> None:
    # Same geometry whatever the photometric preset: compare with the un-augmented student crops
    # (pathology's MPP jitter is part of the geometry, so it is switched off for the comparison).
    base = PRESETS[augment]
    cfg = base.replace(scanner=dataclasses.replace(base.scanner, mpp_jitter=0.0))
    clean = MultiCrop(augment=cfg, teacher_view="clean", seed=5)(tile)
    plain = MultiCrop(augment="none", teacher_view="same", seed=5)(tile)
    assert torch.equal(clean["teacher"], plain["global"])
    assert not torch.equal(clean["global"], clean["teacher"])


def test_teacher_clean_crop_is_a_resized_window_of_the_input() -> None:
    img = _coordinate_image()
    out = MultiCrop(augment="pathology", teacher_view="clean", n_local=0, seed=11)(img)
    for crop in out["teacher"].numpy():
        r, g, b = crop.astype(int)
        assert (b == 90).all()  # no photometric change
        rows = np.diff(r[:, 8:-8], axis=1)  # R follows x: monotone along each row (or flipped)
        assert (rows >= -1).all() or (rows <= 1).all()
        assert (np.abs(np.diff(g[8:-8], axis=1)) <= 1).all()  # G (y) constant along rows


def test_teacher_light_is_close_to_clean_but_not_equal(tile: np.ndarray) -> None:
    light = MultiCrop(augment="pathology", teacher_view="light", seed=4)(tile)
    clean = MultiCrop(augment="pathology", teacher_view="clean", seed=4)(tile)
    assert torch.equal(light["global"], clean["global"])  # student unaffected by teacher_view
    diff = (light["teacher"].float() - clean["teacher"].float()).abs()
    assert 0 < diff.mean() < 12
    lt, ct = light["teacher"].float().mean(1).flatten(), clean["teacher"].float().mean(1).flatten()
    assert torch.corrcoef(torch.stack([lt, ct]))[0, 1] > 0.97


def test_bad_arguments_are_clear_errors(tile: np.ndarray) -> None:
    with pytest.raises(AugmentConfigError, match="teacher_view"):
        MultiCrop(teacher_view="dirty")
    with pytest.raises(AugmentConfigError, match="global_scale"):
        MultiCrop(global_scale=(0.5, 0.2))
    with pytest.raises(AugmentConfigError, match="valid presets"):
        MultiCrop(augment="pathalogy")
    with pytest.raises(ValueError, match="alpha"):
        MultiCrop(seed=0)(np.zeros((64, 64, 4), np.uint8))


def test_forked_worker_stream_differs_whatever_the_worker_seed(tile: np.ndarray) -> None:
    # numpy hashes [3, 0] like 3: a worker seed of 0 must still give a stream of its own
    reference = MultiCrop(seed=3)(tile)
    torch.manual_seed(0)  # torch.initial_seed() is the worker seed outside a DataLoader
    mc = MultiCrop(seed=3)
    mc._pid = os.getpid() + 1
    assert not torch.equal(mc(tile)["global"], reference["global"])
