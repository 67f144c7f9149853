"""ONNX deployment export: the graph matches PyTorch, the gate refuses and writes nothing, and
`vitkd.embed` embeds with the artefact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'vitkd[onnx]'")

from vitkd import export as export_cli
from vitkd.deploy import onnx_graph
from vitkd.deploy.artefact import (
    MODEL_NAME,
    REPORT_NAME,
    build_variant,
    export_artefact,
    variant_of,
)
from vitkd.deploy.gate import GateRefusedError
from vitkd.deploy.measure import cosine_distribution, knn_agreement
from vitkd.embed.resolve import ModelResolutionError, resolve_model
from vitkd.models import build_backbone, export_backbone

SIZE = 56


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_backbone(
        "vit_small_patch14_reg4_dinov2", depth=1, embed_dim=32, num_heads=2, img_size=SIZE
    ).eval()


@pytest.fixture(scope="module")
def artefact(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx")
    export_artefact(tiny, out, "fp32", n_tiles=16, time_s=0.05, source={"test": True})
    return out


def _tiles(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, SIZE, SIZE), dtype=torch.uint8, generator=g)


def test_graph_matches_pytorch_at_any_batch_size(tiny, tmp_path) -> None:
    path = onnx_graph.export_onnx(tiny, tmp_path / "m.onnx", opset=17)
    session = onnx_graph.cpu_session(path)
    for batch in (1, 5):
        x = _tiles(batch, seed=batch)
        cls, patches = session.run(None, {onnx_graph.INPUT: x.numpy()})
        with torch.no_grad():
            want = tiny.forward_tokens(x)
        np.testing.assert_allclose(cls, want.cls.numpy(), atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(patches, want.patches.numpy(), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match=">= 17"):
        onnx_graph.export_onnx(tiny, tmp_path / "old.onnx", opset=16)


def test_passing_export_writes_the_model_and_its_report(artefact: Path) -> None:
    assert sorted(p.name for p in artefact.iterdir()) == [REPORT_NAME, MODEL_NAME]
    report = json.loads((artefact / REPORT_NAME).read_text())
    assert report["variant"] == "fp32" and report["n_tiles"] == 16
    assert report["cosine"]["p01"] >= report["gate"]["min_cosine"] == 0.9999
    assert set(report["cosine"]) == {"min", "p01", "p05", "median", "mean"}
    assert report["probe"]["knn_label_agreement"] == 1.0  # fp32 ONNX: the same neighbours
    assert report["tiles_per_s"]["onnxruntime"] > 0 and report["tiles_per_s"]["pytorch_fp32"] > 0


def test_embed_resolves_the_onnx_artefact_and_matches_pytorch(tiny, artefact: Path) -> None:
    resolved = resolve_model(str(artefact / MODEL_NAME))
    assert resolved.source == "onnx" and resolved.role == "fp32"
    assert resolved.backbone.spec == tiny.spec and resolved.backbone.embed_dim == 32
    x = _tiles(3)
    with torch.no_grad():
        for tokens in ("cls", "cls+mean", "patch"):
            torch.testing.assert_close(
                resolved.backbone.embed(x, tokens), tiny.embed(x, tokens), atol=1e-4, rtol=1e-4
            )
    from evaluation.encoder import load_encoder  # the evaluation CLIs take it too

    torch.testing.assert_close(
        load_encoder(str(artefact / MODEL_NAME))(x), tiny(x), atol=1e-4, rtol=1e-4
    )
    with pytest.raises(ValueError, match="uint8 tiles"):
        resolved.backbone.embed(_tiles(1).float())
    with pytest.raises(ModelResolutionError, match="drop --weights"):
        resolve_model(str(artefact / MODEL_NAME), weights="x.safetensors")


def test_an_onnx_file_without_vitkd_metadata_is_refused_by_name(tiny, tmp_path) -> None:
    bare = onnx_graph.export_onnx(tiny, tmp_path / "bare.onnx")
    with pytest.raises(ModelResolutionError, match="no `vitkd` metadata"):
        resolve_model(str(bare))


@pytest.mark.parametrize("variant", ["fp16", "int8"])
def test_gate_refuses_and_writes_nothing(tiny, tmp_path, variant: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(GateRefusedError) as err:
        export_artefact(tiny, out, variant, n_tiles=8, min_cosine=1.0, time_s=0.01)
    message = str(err.value)
    assert f"{variant} artefact has p01 cosine" in message and "below the gate 1.0 by" in message
    assert "nothing was written" in message
    assert err.value.report["cosine"]["p01"] < 1.0
    assert not out.exists() or not any(out.iterdir())  # no model, no report, no temp file


def test_cli_exit_status_on_refusal_and_on_success(tiny, tmp_path, capsys) -> None:
    folder = export_backbone(tiny, tmp_path / "student")
    common = [str(folder), "--format", "onnx", "--tiles", "8", "--time-s", "0.01"]
    refused = tmp_path / "refused"
    assert (
        export_cli.main([*common, "--dtype", "fp16", "--min-cosine", "1.0", "--out", str(refused)])
        == 3
    )
    assert "below the gate" in capsys.readouterr().err
    assert not (refused / MODEL_NAME).exists()
    ok = tmp_path / "ok"
    assert export_cli.main([*common, "--quantize", "int8", "--out", str(ok)]) == 0
    assert "exported int8 ONNX" in capsys.readouterr().out
    assert json.loads((ok / REPORT_NAME).read_text())["variant"] == "int8"
    assert resolve_model(str(ok / MODEL_NAME)).role == "int8"


def test_static_int8_needs_calibration_tiles(tiny, tmp_path) -> None:
    with pytest.raises(ValueError, match="calibration tiles"):
        build_variant(tiny, "int8-static", tmp_path, calibration=None)
    path = build_variant(tiny, "int8-static", tmp_path, calibration=_tiles(8))
    session = onnx_graph.cpu_session(path)
    x = _tiles(4, seed=3)
    got = session.run(["cls"], {onnx_graph.INPUT: x.numpy()})[0]
    with torch.no_grad():
        want = tiny(x).numpy()
    assert cosine_distribution(want, got)["min"] > 0.9  # quantised, not broken


@pytest.mark.parametrize(
    "dtype,quantize,want",
    [("fp32", "none", "fp32"), ("fp16", "none", "fp16"), ("fp32", "int8", "int8")],
)
def test_variant_names(dtype: str, quantize: str, want: str) -> None:
    assert variant_of(dtype, quantize) == want


def test_fp16_plus_int8_is_refused() -> None:
    with pytest.raises(ValueError, match="drop --dtype fp16"):
        variant_of("fp16", "int8")


def test_cosine_and_knn_agreement_fall_with_noise() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(64, 16))
    same = cosine_distribution(ref, ref.copy())
    assert same["min"] == pytest.approx(1.0)
    noisy = ref + rng.normal(scale=1.0, size=ref.shape)
    stats = cosine_distribution(ref, noisy)
    assert stats["min"] <= stats["p01"] <= stats["p05"] <= stats["median"] < 0.9
    assert knn_agreement(ref, ref.copy())["knn_label_agreement"] == 1.0
    unrelated = knn_agreement(ref, rng.normal(size=ref.shape))
    assert unrelated["knn_neighbour_overlap"] < 0.3
