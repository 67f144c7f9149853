"""`evaluation`'s embedding is `vitkd.embed`'s: same tile, same features; bf16 only when asked."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from evaluation import encoder
from evaluation.encoder import embed_images, load_encoder
from evaluation.probes.run import embed_samples
from evaluation.probes.sources import ImageSample
from slides import SAMPLE_SLIDE, make_grid, open_slide
from vitkd.embed import EmbedConfig, run
from vitkd.embed.embedder import Embedder, autocast_dtype
from vitkd.models import build_backbone, export_backbone

SIZE = 56


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(7)
    backbone = build_backbone(
        "vit_small_patch14_reg4_dinov2", depth=1, embed_dim=64, num_heads=2, img_size=SIZE
    )
    return export_backbone(backbone, tmp_path_factory.mktemp("model") / "tiny-vit")


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PNG tiles at the model's size and larger/smaller (to be resized): sample slide and noise."""
    root = tmp_path_factory.mktemp("tiles") / "tiles"
    root.mkdir()
    with open_slide(SAMPLE_SLIDE) as slide:
        grid = make_grid(slide, mpp=0.5, size=64, overlap=0, min_tissue=0.25)
        for i in range(min(4, len(grid))):
            Image.fromarray(grid.read_tile(slide, i)).save(root / f"a{i}.png")
    rng = np.random.default_rng(0)
    for i, side in enumerate((SIZE, 80, 41)):
        img = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / f"b{i}.png")
    return root


def test_probe_path_and_embed_run_give_the_same_features(
    model_dir: Path, tiles: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run(EmbedConfig([tiles], str(model_dir), out, batch_size=3, workers=0, precision="32"))
    with h5py.File(out / "tiles.h5", "r") as f:
        run_feats = f["features"][()]
        names = [n.decode() if isinstance(n, bytes) else n for n in f["tile_paths"][()]]

    splits = ["train"] * (len(names) - 2) + ["test"] * 2  # rows keep their order within a split
    samples = [
        ImageSample(tiles / name, "ab"[i % 2], split)
        for i, (name, split) in enumerate(zip(names, splits, strict=True))
    ]
    probe = embed_samples(samples, load_encoder(str(model_dir)), batch_size=2)
    probe_feats = np.concatenate([probe.x_train, probe.x_test])
    assert probe_feats.shape == run_feats.shape == (7, 64)
    np.testing.assert_allclose(probe_feats, run_feats, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("precision", "device", "expected"),
    [
        ("32", "cuda", None),
        ("auto", "cuda", torch.bfloat16),
        ("bf16", "cuda", torch.bfloat16),
        ("32", "cpu", None),
        ("auto", "cpu", None),
    ],
)
def test_precision_policy(precision: str, device: str, expected: torch.dtype | None) -> None:
    assert autocast_dtype(precision, torch.device(device)) is expected


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision 'fp16'"):
        autocast_dtype("fp16", torch.device("cuda"))


class _Recorder(Embedder):
    """An Embedder that records the autocast dtype it resolved and runs nothing."""

    seen: ClassVar[list[torch.dtype | None]] = []

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.dtype)
        return torch.zeros(len(tiles), self.backbone.embed_dim)

    __call__ = forward


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({}, None), ({"precision": "32"}, None), ({"precision": "auto"}, torch.bfloat16)],
)
def test_embed_images_uses_bf16_on_cuda_only_when_asked(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict, expected: torch.dtype | None
) -> None:
    """Default `embed_images` on CUDA stays fp32; `auto`/`bf16` switch bf16 autocast on."""
    backbone = load_encoder(str(model_dir))
    monkeypatch.setattr(encoder, "Embedder", _Recorder)
    monkeypatch.setattr(backbone, "to", lambda *a, **k: backbone)  # no CUDA needed to resolve
    _Recorder.seen = []
    images = [np.zeros((SIZE, SIZE, 3), np.uint8)] * 3
    feats = embed_images(backbone, images, batch_size=2, device="cuda", progress=False, **kwargs)
    assert feats.shape == (3, 64)
    assert _Recorder.seen == [expected, expected]


def test_embed_images_stays_fp32_on_cpu_even_with_auto(model_dir: Path) -> None:
    backbone = load_encoder(str(model_dir))
    images = [np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)]
    with torch.inference_mode():
        expected = backbone.embed(torch.from_numpy(images[0]).permute(2, 0, 1)[None]).numpy()
    feats = embed_images(backbone, images, precision="auto", progress=False)
    assert feats.dtype == np.float32
    np.testing.assert_array_equal(feats, expected)


@pytest.mark.gpu
def test_bf16_on_cuda_when_asked_and_close_to_fp32(model_dir: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    backbone = load_encoder(str(model_dir))
    images = [np.random.default_rng(2).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)] * 4
    fp32 = embed_images(backbone, images, device="cuda", progress=False)
    bf16 = embed_images(backbone, images, device="cuda", precision="bf16", progress=False)
    assert not np.array_equal(fp32, bf16)
    np.testing.assert_allclose(bf16, fp32, rtol=0.05, atol=0.05)
