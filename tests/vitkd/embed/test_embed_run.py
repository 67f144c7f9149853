"""End-to-end embedding runs: features match a direct forward, coords match the grid, token widths."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import MPP, TILE, TINY_ARCH, TINY_KWARGS, make_cfg, read_tiles
from safetensors.torch import save_file

from slides import SAMPLE_SLIDE, make_grid, open_slide, read_image
from vitkd.embed import run
from vitkd.embed.resolve import sha256_file
from vitkd.embed.runlog import read_log
from vitkd.models import build_backbone, load_exported


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, dict, dict]:
    with h5py.File(path, "r") as f:
        return (
            f["features"][()],
            f["coords"][()],
            dict(f["features"].attrs),
            dict(f["coords"].attrs),
        )


@pytest.mark.parametrize("workers", [0, 2])
def test_features_equal_direct_forward_and_coords_equal_grid(
    three_slides: list[Path], tiny_model_dir: Path, tmp_path: Path, workers: int
) -> None:
    cfg = make_cfg(three_slides[:2], tiny_model_dir, tmp_path / "out", workers=workers)
    summary = run(cfg)
    assert sorted(summary.done) == ["s0", "s1"]
    model = load_exported(tiny_model_dir).eval()
    for slide_path in three_slides[:2]:
        feats, coords, f_attrs, c_attrs = _read(tmp_path / "out" / f"{slide_path.stem}.h5")
        with open_slide(slide_path) as slide:
            grid = make_grid(slide, mpp=MPP, size=TILE, min_tissue=cfg.min_tissue)
        assert len(grid) > 0
        np.testing.assert_array_equal(coords, grid.coords)
        assert coords.dtype == np.int64
        with torch.inference_mode():
            expected = model.embed(read_tiles(slide_path, grid), tokens="cls").numpy()
        assert feats.dtype == np.float32 and feats.shape == (len(grid), TINY_KWARGS["embed_dim"])
        np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-5)
        assert c_attrs["patch_size"] == TILE
        assert c_attrs["patch_size_level0"] == grid.size_level0
        assert (c_attrs["level0_width"], c_attrs["level0_height"]) == tuple(slide.dimensions)
        assert c_attrs["name"] == slide_path.stem
        assert c_attrs["target_magnification"] == pytest.approx(grid.target_magnification)
        assert f_attrs["encoder"] == f"{TINY_ARCH} ({tiny_model_dir.parent.name}/tiny-vit)"
        assert f_attrs["encoder_arch"] == TINY_ARCH
        assert f_attrs["tokens"] == "cls"
        assert f_attrs["weights_sha256"] == sha256_file(tiny_model_dir / "model.safetensors")
        assert f_attrs["mpp"] == MPP and f_attrs["patch_size"] == TILE
    assert not list((tmp_path / "out").glob("*.tmp")) and not list(
        (tmp_path / "out").glob("*.lock")
    )


@pytest.mark.parametrize(
    ("tokens", "shape"), [("cls", (64,)), ("cls+mean", (128,)), ("patch", (16, 64))]
)
def test_token_modes_give_the_right_widths(
    three_slides: list[Path], tiny_model_dir: Path, tmp_path: Path, tokens: str, shape: tuple
) -> None:
    run(make_cfg(three_slides[1:2], tiny_model_dir, tmp_path, tokens=tokens))
    feats, coords, attrs, _ = _read(tmp_path / "s1.h5")
    assert feats.shape == (len(coords), *shape)
    assert attrs["tokens"] == tokens
    model = load_exported(tiny_model_dir).eval()
    with open_slide(three_slides[1]) as slide:
        grid = make_grid(slide, mpp=MPP, size=TILE, min_tissue=0.25)
    with torch.inference_mode():
        expected = model.embed(read_tiles(three_slides[1], grid), tokens=tokens).numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-5)


def test_no_tissue_slide_gives_empty_datasets(
    blank_slide: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    run(make_cfg([blank_slide], tiny_model_dir, tmp_path, tokens="cls+mean"))
    feats, coords, _, c_attrs = _read(tmp_path / "glass.h5")
    assert feats.shape == (0, 128) and feats.dtype == np.float32
    assert coords.shape == (0, 2) and coords.dtype == np.int64
    assert c_attrs["patch_size"] == TILE
    assert read_log(tmp_path)[-1]["status"] == "done"


def test_timm_name_with_weights_file_matches_that_model(
    three_slides: list[Path], tmp_path: Path
) -> None:
    torch.manual_seed(3)
    model = build_backbone(TINY_ARCH, **TINY_KWARGS).eval()
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.model.state_dict().items()}, str(weights))
    cfg = make_cfg(
        three_slides[2:], TINY_ARCH, tmp_path / "out", weights=weights, model_kwargs=TINY_KWARGS
    )
    run(cfg)
    feats, coords, attrs, _ = _read(tmp_path / "out" / "s2.h5")
    with open_slide(three_slides[2]) as slide:
        grid = make_grid(slide, mpp=MPP, size=TILE, min_tissue=0.25)
    np.testing.assert_array_equal(coords, grid.coords)
    with torch.inference_mode():
        expected = model.embed(read_tiles(three_slides[2], grid)).numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-5)
    assert attrs["encoder"] == TINY_ARCH
    assert attrs["weights_sha256"] == sha256_file(weights)


def test_sample_slide_with_coords_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    from slides import save_grid

    with open_slide(SAMPLE_SLIDE) as slide:
        grid = make_grid(slide, mpp=MPP, size=TILE, min_tissue=0.5)
        grid.coords = grid.coords[::7]  # a hand-made subset only a coords file can produce
    save_grid(tmp_path / "coords" / f"{SAMPLE_SLIDE.stem}_patches.h5", grid)
    run(make_cfg([SAMPLE_SLIDE], tiny_model_dir, tmp_path / "out", coords=tmp_path / "coords"))
    feats, coords, _, _ = _read(tmp_path / "out" / f"{SAMPLE_SLIDE.stem}.h5")
    np.testing.assert_array_equal(coords, grid.coords)
    model = load_exported(tiny_model_dir).eval()
    with torch.inference_mode():
        expected = model.embed(read_tiles(SAMPLE_SLIDE, grid)).numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-5)


def test_folder_of_tiles_is_one_slide(
    tile_folder: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    run(make_cfg([tile_folder], tiny_model_dir, tmp_path / "out"))
    with h5py.File(tmp_path / "out" / "tiles.h5", "r") as f:
        feats, coords = f["features"][()], f["coords"][()]
        names = [n.decode() if isinstance(n, bytes) else n for n in f["tile_paths"][()]]
        assert "mpp" not in f["features"].attrs
    assert names == [f"t{i}.png" for i in range(5)]
    np.testing.assert_array_equal(coords, np.stack([np.arange(5), np.zeros(5)], 1))
    model = load_exported(tiny_model_dir).eval()
    tiles = [read_image(tile_folder / name) for name in names]
    tiles = [t if t.shape[0] == TILE else np.asarray(_resize(t)) for t in tiles]
    with torch.inference_mode():
        expected = model.embed(torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-5)


def _resize(tile: np.ndarray) -> np.ndarray:
    """Antialiased bilinear on float pixels, rounded once (`vitkd.embed.preprocess`'s contract)."""
    chw = torch.from_numpy(np.array(tile)).permute(2, 0, 1)[None].float()
    out = torch.nn.functional.interpolate(chw, size=(TILE, TILE), mode="bilinear", antialias=True)
    return out[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def test_vitkd_checkpoint_embeds_with_the_chosen_branch(
    three_slides: list[Path], tmp_path: Path
) -> None:
    from vitkd.models import build_student

    torch.manual_seed(5)
    student = build_student(TINY_ARCH, **TINY_KWARGS).eval()
    ema = build_student(TINY_ARCH, **TINY_KWARGS).eval()
    state = {f"ema.{k}": v for k, v in ema.state_dict().items()}
    state.update({f"student.{k}": v for k, v in student.state_dict().items()})
    ckpt = tmp_path / "run.ckpt"
    hparams = {"student": {"name": TINY_ARCH, "kwargs": TINY_KWARGS}}
    torch.save({"hyper_parameters": hparams, "state_dict": state}, ckpt)
    with open_slide(three_slides[0]) as slide:
        grid = make_grid(slide, mpp=MPP, size=TILE, min_tissue=0.25)
    tiles = read_tiles(three_slides[0], grid)
    for which, model in (("ema", ema), ("student", student)):
        run(make_cfg(three_slides[:1], ckpt, tmp_path / which, which=which))
        feats, _, attrs, _ = _read(tmp_path / which / "s0.h5")
        with torch.inference_mode():
            np.testing.assert_allclose(feats, model.embed(tiles).numpy(), rtol=1e-4, atol=1e-5)
        assert attrs["encoder"] == f"{TINY_ARCH} ({tmp_path.name}/run:{which})"
        assert attrs["weights_sha256"] == sha256_file(ckpt)


def test_bf16_precision_is_close_to_fp32(
    three_slides: list[Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    run(make_cfg(three_slides[:1], tiny_model_dir, tmp_path / "fp32", precision="32"))
    run(make_cfg(three_slides[:1], tiny_model_dir, tmp_path / "bf16", precision="bf16"))
    fp32, _, _, _ = _read(tmp_path / "fp32" / "s0.h5")
    bf16, _, _, _ = _read(tmp_path / "bf16" / "s0.h5")
    assert bf16.dtype == np.float32 and not np.array_equal(fp32, bf16)
    np.testing.assert_allclose(bf16, fp32, atol=0.1)


def test_wrong_tile_size_for_a_fixed_size_model_fails_before_reading(
    three_slides: list[Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"--size 70: .* takes 56 px tiles only"):
        run(make_cfg(three_slides[:1], tiny_model_dir, tmp_path, size=70, skip_errors=True))
    assert not (tmp_path / "s0.h5").exists()
