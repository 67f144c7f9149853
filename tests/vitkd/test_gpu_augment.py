"""The device augmentation path: each torch op against the CPU (cv2/numpy) op, the pipeline's
shapes, dtypes, ranges and determinism, and the data module's `augment_device` switch."""

from __future__ import annotations

from typing import Any

import cv2
import lightning as L
import numpy as np
import pytest
import torch

from vitkd.data.augment import scanner, stain
from vitkd.data.augment.color import grayscale as cpu_grayscale
from vitkd.data.augment.color import solarize as cpu_solarize
from vitkd.data.augment.presets import AugmentConfig, ColorConfig, ScannerConfig, StainConfig
from vitkd.data.collate import MaskConfig
from vitkd.data.datamodule import CropConfig, DistillDataModule, TileSource
from vitkd.data.gpu import DeviceMultiCrop, DeviceMultiCropCollate, DeviceMultiCropDataset, ops
from vitkd.data.gpu.params import neutral_params, sample_params, stack_params, unsupported_ops
from vitkd.data.masking import sample_masks

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    """Four 64 px H&E-like tiles: pink/purple blobs on near-white, plus structure for blurs."""
    rng = np.random.default_rng(0)
    base = np.full((4, 64, 64, 3), (235, 225, 235), np.float64)
    yy, xx = np.mgrid[:64, :64]
    for t in range(4):
        for _ in range(12):
            cy, cx, r = [*rng.integers(0, 64, 2).tolist(), rng.integers(4, 12)]
            blob = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            base[t][blob] = rng.choice([(120, 60, 150), (200, 110, 170), (170, 90, 160)])
    base += rng.normal(0, 6, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def _t(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def _np(x: torch.Tensor) -> np.ndarray:
    return ops.to_uint8(x).permute(0, 2, 3, 1).numpy()


def _close(
    got: np.ndarray, want: np.ndarray, max_diff: int = 1, share: float = 0.995, worst: int = 2
) -> None:
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= max_diff + worst - 1, diff.max()
    assert (diff <= max_diff).mean() >= share, (diff <= max_diff).mean()


# ------------------------------------------------------------------ ops vs the CPU reference
def test_od_affine_equals_the_cpu_stain_affine(tiles) -> None:
    rng = np.random.default_rng(1)
    mats = [
        stain.hed_jitter_affine(rng.uniform(0.9, 1.1, 3), rng.uniform(-0.05, 0.05, 3))
        for _ in tiles
    ]
    got = _np(
        ops.od_affine(
            _t(tiles),
            torch.tensor(np.stack([m for m, _ in mats])),
            torch.tensor(np.stack([b for _, b in mats])),
        )
    )
    want = np.stack([stain.apply_od_affine(t, *m) for t, m in zip(tiles, mats, strict=True)])
    _close(got, want)
    assert np.abs(got.astype(int) - tiles).mean() > 1  # it does change the colours


def test_tone_equals_the_cpu_lut(tiles) -> None:
    gains = np.stack([stain.planckian_gains(t) for t in (5500, 6500, 7000, 8000)])
    gamma, bright, contrast = (
        np.array([0.8, 1.0, 1.2, 1.1]),
        np.array([0.05, 0, -0.05, 0.02]),
        np.array([1.1, 1, 0.9, 1.0]),
    )
    got = _np(
        ops.tone(
            _t(tiles),
            torch.tensor(gains),
            torch.tensor(gamma),
            torch.tensor(bright),
            torch.tensor(contrast),
        )
    )
    want = []
    for i, tile in enumerate(tiles):
        pivot = float(np.clip(tile.mean() / 255.0, 0, 1)) ** gamma[i]
        want.append(
            stain.apply_channel_lut(
                tile, stain.tone_lut(gains[i], gamma[i], bright[i], contrast[i], pivot)
            )
        )
    _close(got, np.stack(want))


def test_hue_saturation_equals_the_cpu_yiq_map(tiles) -> None:
    hue, sat = np.array([0.02, -0.02, 0.0, 0.01]), np.array([1.2, 0.8, 1.0, 1.1])
    got = _np(
        ops.color_matrix(_t(tiles), ops.hue_saturation_matrix(torch.tensor(hue), torch.tensor(sat)))
    )
    want = np.stack(
        [stain.hue_saturation(t, h, s) for t, h, s in zip(tiles, hue, sat, strict=True)]
    )
    _close(got, want)


def test_blurs_equal_cv2(tiles) -> None:
    sigma = torch.tensor([0.5, 1.0, 1.5, 0.0])
    got = _np(ops.gaussian_blur(_t(tiles), sigma))
    want = np.stack([scanner.gaussian_blur(t, float(s)) for t, s in zip(tiles, sigma, strict=True)])
    _close(got, want)
    radius = torch.tensor([1.0, 2.5, 1.7, 0.0])
    got = _np(ops.defocus(_t(tiles), radius))
    want = np.stack([scanner.defocus(t, float(r)) for t, r in zip(tiles, radius, strict=True)])
    _close(got, want)
    np.testing.assert_array_equal(got[3], tiles[3])  # radius 0 leaves the crop alone
    # DINOv2's 9x9 colour blur
    got = _np(ops.gaussian_blur(_t(tiles), torch.full((4,), 1.3), radius=4))
    want = np.stack([cv2.GaussianBlur(t, (9, 9), sigmaX=1.3, sigmaY=1.3) for t in tiles])
    _close(got, want)


def test_crop_resize_cuts_averages_and_flips(tiles) -> None:
    x = _t(tiles)
    whole = torch.tensor([[0.0, 0.0, 64.0, 64.0]] * 4)
    no = torch.zeros(4, dtype=torch.bool)
    torch.testing.assert_close(
        ops.crop_resize(x, torch.arange(4), whole, no, 64), x, atol=1e-5, rtol=0
    )
    half = ops.crop_resize(x, torch.arange(4), whole, no, 32)  # 2x shrink averages 2x2 blocks
    torch.testing.assert_close(half, torch.nn.functional.avg_pool2d(x, 2), atol=1e-5, rtol=0)
    box = torch.tensor([[8.0, 16.0, 32.0, 24.0]])
    flipped = ops.crop_resize(x, torch.tensor([2]), box, torch.tensor([True]), 32)
    straight = ops.crop_resize(x, torch.tensor([2]), box, torch.tensor([False]), 32)
    torch.testing.assert_close(flipped, straight.flip(-1))
    want = cv2.resize(tiles[2][16:40, 8:40], (32, 32), interpolation=cv2.INTER_LINEAR)
    _close(_np(straight)[0], want, max_diff=2, share=0.98, worst=5)


def test_colour_jitter_follows_torchvision_semantics(tiles) -> None:
    x = _t(tiles)
    neutral = torch.tensor([[1.0, 1.0, 1.0, 0.0]] * 4)
    order = torch.arange(4).repeat(4, 1)
    torch.testing.assert_close(ops.color_jitter(x, neutral, order), x)
    bright = neutral.clone()
    bright[:, 0] = 1.3
    torch.testing.assert_close(ops.color_jitter(x, bright, order), (x * 1.3).clamp(0, 1))
    gray = neutral.clone()
    gray[:, 2] = 0.0  # saturation 0 is grayscale
    out = ops.color_jitter(x, gray, order)
    _close(_np(out), np.stack([cpu_grayscale(t) for t in tiles]))
    both = neutral.clone()
    both[:, 0], both[:, 1] = 1.4, 0.6
    reverse = torch.tensor([[1, 0, 2, 3]] * 4)
    assert not torch.allclose(ops.color_jitter(x, both, order), ops.color_jitter(x, both, reverse))
    hue = neutral.clone()
    hue[:, 3] = 0.1
    assert (ops.color_jitter(x, hue, order) - x).abs().mean() > 0.01


def test_point_ops_change_images_as_they_should(tiles) -> None:
    x = _t(tiles)
    flags = torch.tensor([True, False, True, False])
    _close(_np(ops.solarize(x, flags))[0], cpu_solarize(tiles[0]))
    torch.testing.assert_close(ops.solarize(x, flags)[1], x[1])
    g = torch.Generator().manual_seed(0)
    noisy = ops.add_noise(x, torch.tensor([0.0, 4.0, 8.0, 8.0]), g)
    torch.testing.assert_close(noisy[0], x[0])
    std = ((noisy - x) * 255)[2:].std().item()
    assert 6.5 < std < 9.0  # clamping at 0/1 only trims it a little
    sharp = ops.sharpen(x, torch.tensor([1.0, 1.0, 1.0, 0.0]))
    lap = lambda y: (y[..., 1:, :] - y[..., :-1, :]).abs().mean().item()  # noqa: E731
    assert lap(sharp[:3]) > 1.1 * lap(x[:3])
    torch.testing.assert_close(sharp[3], x[3])
    small = ops.downscale(x, torch.tensor([0.5, 0.4, 1.0, 0.5]))
    assert lap(small[[0, 1, 3]]) < 0.8 * lap(x[[0, 1, 3]])
    torch.testing.assert_close(small[2], x[2])
    want = scanner.downscale(tiles[0], 0.5)
    _close(_np(small[:1])[0], want, max_diff=2, share=0.97)


# ------------------------------------------------------------------------------ the pipeline
class _Tiles(torch.utils.data.Dataset):
    def __init__(self, tiles: np.ndarray) -> None:
        self.tiles = tiles

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.tiles[i], i


def _device_batch(tiles, draws, augment: Any = "pathology", teacher_view: str = "light"):
    crop = DeviceMultiCrop(56, 28, 2, 3, augment=augment, teacher_view=teacher_view)
    data = DeviceMultiCropDataset(_Tiles(tiles), crop, seed=7)
    collate = DeviceMultiCropCollate(MaskConfig(patch_size=14), 56, 2)
    return crop, collate([data[d] for d in draws])


def test_pipeline_gives_the_multicrop_batch_contract(tiles) -> None:
    crop, batch = _device_batch(tiles, [0, 1, 2, 3, 4])
    out = crop.apply(batch)
    assert set(out) == {"global", "local", "teacher", "masks", "mask_index", "n_images"}
    assert out["global"].shape == out["teacher"].shape == (10, 3, 56, 56)
    assert out["local"].shape == (15, 3, 28, 28)
    assert out["global"].dtype == out["local"].dtype == out["teacher"].dtype == torch.uint8
    assert out["masks"].shape == (10, 16) and out["masks"].dtype == torch.bool
    assert out["n_images"] == 5
    # teacher view 'light': same geometry, milder colour than the student's pathology view
    clean_crop, clean = _device_batch(tiles, [0, 1, 2, 3, 4], teacher_view="clean")
    clean_out = clean_crop.apply(clean)
    light = (out["teacher"].float() - clean_out["teacher"].float()).abs().mean()
    strong = (out["global"].float() - clean_out["teacher"].float()).abs().mean()
    assert light < strong
    # masks are drawn as the CPU collate draws them: same seed rule, same generator
    seed = sum(batch_seed for batch_seed in [_seed(d) for d in range(5)]) % 2**63
    want = sample_masks(
        10,
        (4, 4),
        mask_probability=0.5,
        ratio_range=(0.1, 0.5),
        generator=torch.Generator().manual_seed(seed),
    )
    torch.testing.assert_close(out["masks"], want)
    # the flat indices of the masked tokens, so the training step gathers them without a sync
    torch.testing.assert_close(out["mask_index"], want.flatten().nonzero().flatten())


def _seed(draw: int) -> int:
    from vitkd.data.multicrop_dataset import draw_seed

    return draw_seed(7, draw)


def test_pipeline_is_deterministic_per_seed_and_views_are_view_major(tiles) -> None:
    crop, a = _device_batch(tiles, [3, 8, 5])
    _, b = _device_batch(tiles, [3, 8, 5])
    out_a, out_b = crop.apply(a), crop.apply(b)
    for key in ("global", "local", "teacher"):
        torch.testing.assert_close(out_a[key], out_b[key])
    _, c = _device_batch(tiles, [4, 9, 6])
    assert not torch.equal(crop.apply(c)["global"], out_a["global"])
    # view-major: crop v * B + b comes from image b
    _, single = _device_batch(tiles, [8])
    one = crop.apply(single)
    n = 3
    for v in range(2):
        geometry_only = torch.equal(a["global_boxes"][v * n + 1], single["global_boxes"][v])
        assert geometry_only
    assert one["global"].shape[0] == 2


def test_neutral_parameters_leave_crops_unchanged(tiles) -> None:
    crop, batch = _device_batch(tiles, [0, 1], augment="none", teacher_view="same")
    assert batch["active"]["global"] == [] and batch["active"]["local"] == []
    out = crop.apply(batch)
    torch.testing.assert_close(out["teacher"], out["global"])
    tiles_f = batch["tiles"].float() / 255
    want = ops.to_uint8(
        ops.crop_resize(
            tiles_f, batch["global_index"], batch["global_boxes"], batch["global_flips"], 56
        )
    )
    torch.testing.assert_close(out["global"], want)


def test_every_supported_operation_is_drawn_and_jpeg_is_reported(tiles) -> None:
    config = AugmentConfig(
        stain=StainConfig(
            hed_p=1,
            planckian_p=1,
            gamma_p=1,
            brightness_contrast_p=1,
            hue_saturation_p=1,
            macenko_p=1,
        ),
        color=ColorConfig(jitter_p=1, grayscale_p=1, blur_p=(1, 1, 1), solarize_p=(1, 1, 1)),
        scanner=ScannerConfig(blur_p=1, downscale_p=1, noise_p=1, sharpen_p=1, jpeg_p=1),
    )
    rows = [
        sample_params(config, np.random.default_rng(i), "local", stain.REFERENCE_STAIN_MATRIX)
        for i in range(3)
    ]
    stacked = stack_params(rows)
    neutral = neutral_params(3)
    changed = {k for k in stacked if not np.array_equal(stacked[k], neutral[k])}
    assert changed >= set(neutral) - {"defocus"}  # blur and defocus are exclusive
    assert unsupported_ops(config) == ["scanner.jpeg_p"]
    crop, batch = _device_batch(tiles, [0, 1], augment=config)
    out = crop.apply(batch)
    assert out["local"].shape == (6, 3, 28, 28)


# ------------------------------------------------------------------------ data module switch
def test_datamodule_augment_device_switch_trains_on_cpu(tmp_path) -> None:
    from vitkd.distill.config import StudentConfig, TeacherConfig
    from vitkd.distill.module import DistillationModule

    arch = "vit_small_patch14_reg4_dinov2"
    kw = {"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": 56}
    module = DistillationModule(
        teacher=TeacherConfig(name=arch, weights="random", kwargs=kw),
        student=StudentConfig(name=arch, kwargs=kw),
        targets="features",
    )
    dm = DistillDataModule(
        source=TileSource(tile_size=56, holdout_fraction=0.1, holdout_max_tiles=8),
        crops=CropConfig(global_size=56, local_size=28, n_local=2),
        masking=MaskConfig(patch_size=14),
        batch_size=2,
        samples_per_epoch=8,
        num_workers=0,
        augment_device="gpu",  # the device path, here on the CPU trainer's device
    )
    assert dm.augment_on_device()
    L.Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    ).fit(module, datamodule=dm)
    assert module.trainer.global_step == 2
    auto = DistillDataModule(augment_device="auto")
    assert not auto.augment_on_device()  # no trainer on CUDA
    with pytest.raises(ValueError, match="augment_device"):
        DistillDataModule(augment_device="tpu").augment_on_device()


@pytest.mark.gpu
@needs_cuda
def test_cuda_pipeline_equals_the_cpu_run_of_the_same_ops(tiles) -> None:
    # noise draws differ by device generator: compare a preset without noise
    config = AugmentConfig(
        stain=StainConfig(
            hed_p=0.8, gamma_p=0.5, brightness_contrast_p=0.5, hue_saturation_p=0.5, macenko_p=0.5
        ),
        color=ColorConfig(jitter_p=0.8, blur_p=(0.5, 0.5, 0.5)),
        scanner=ScannerConfig(defocus_p=0.3, blur_p=0.3, downscale_p=0.3, sharpen_p=0.3),
    )
    crop, batch = _device_batch(tiles, [0, 1, 2, 3], augment=config)
    on_cpu = crop.apply(batch)
    moved = L.pytorch.utilities.move_data_to_device(batch, torch.device("cuda"))
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")  # no TF32 in the colour matrices
    try:
        on_gpu = crop.apply(moved)
    finally:
        torch.set_float32_matmul_precision(precision)
    for key in ("global", "local", "teacher"):
        diff = (on_gpu[key].cpu().int() - on_cpu[key].int()).abs()
        assert diff.max() <= 3, key
        assert (diff <= 1).float().mean() > 0.99, key
