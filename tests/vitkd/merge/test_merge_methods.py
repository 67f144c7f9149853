"""Each merge method against an independent numpy computation of its formula, on tiny ViTs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.numpy import load_file as load_numpy

from vitkd.merge import elect_sign, ties_merge, trim
from vitkd.merge.cli import main
from vitkd.models import build_student, export_backbone, load_exported

TINY = {"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": 28}
ARCH = "vit_small_patch14_reg4_dinov2"


def _export(folder: Path, seed: int, base: Path | None = None, **kwargs: object) -> Path:
    """A tiny student; with `base`, the base's weights plus a seeded random update."""
    torch.manual_seed(seed)
    backbone = build_student(ARCH, with_mask_token=False, **{**TINY, **kwargs})
    extra = {}
    if base is not None:
        state = load_exported(base).model.state_dict()
        gen = torch.Generator().manual_seed(seed)
        update = {k: 0.01 * torch.randn(v.shape, generator=gen) for k, v in state.items()}
        backbone.model.load_state_dict({k: state[k] + update[k] for k in state})
        extra = {"teacher": "demo", "student_init": str(base)}
    return export_backbone(backbone, folder, extra=extra)


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("family")
    base = _export(root / "init", 0)
    return base, [_export(root / f"branch{i}", 10 + i, base) for i in range(3)]


def _np(folder: Path) -> dict[str, np.ndarray]:
    return {
        k: v.astype(np.float64) for k, v in load_numpy(str(folder / "model.safetensors")).items()
    }


def _ties_reference(
    branches: list[dict[str, np.ndarray]], base: dict[str, np.ndarray], keep: float, scale: float
) -> dict[str, np.ndarray]:
    """TIES written out step by step: per task vector a global magnitude rank, then per entry."""
    keys = list(base)
    taus = [np.concatenate([(b[k] - base[k]).ravel() for k in keys]) for b in branches]
    trimmed = []
    for tau in taus:
        kept = np.argsort(-np.abs(tau), kind="stable")[: max(1, int(keep * tau.size))]
        t = np.zeros_like(tau)
        t[kept] = tau[kept]
        trimmed.append(t)
    stack = np.stack(trimmed)
    sign = np.sign(stack.sum(0))
    sign[sign == 0] = np.sign(np.sign(stack.sum(0)).sum()) or 1.0
    merged = np.zeros(stack.shape[1])
    for j in range(stack.shape[1]):
        agreeing = [v for v in stack[:, j] if v != 0 and np.sign(v) == sign[j]]
        merged[j] = np.mean(agreeing) if agreeing else 0.0
    out, start = {}, 0
    for k in keys:
        n = base[k].size
        out[k] = base[k] + scale * merged[start : start + n].reshape(base[k].shape)
        start += n
    return out


def _merged(
    tmp_path: Path, family: tuple[Path, list[Path]], *args: str
) -> tuple[dict[str, np.ndarray], dict]:
    _, branches = family
    out = tmp_path / "merged"
    assert main([*map(str, branches), "--out", str(out), *args]) == 0
    return _np(out), json.loads((out / "config.json").read_text())


def test_average_is_the_mean(tmp_path: Path, family: tuple[Path, list[Path]]) -> None:
    merged, config = _merged(tmp_path, family, "--method", "average")
    branches = [_np(b) for b in family[1]]
    for key, value in merged.items():
        np.testing.assert_allclose(value, sum(b[key] for b in branches) / 3, atol=1e-6)
    assert config["vitkd"]["merge"]["method"] == "average"
    assert config["vitkd"]["merge"]["base"] is None


def test_task_arithmetic_adds_scaled_task_vectors(
    tmp_path: Path, family: tuple[Path, list[Path]]
) -> None:
    merged, config = _merged(tmp_path, family, "--method", "task-arithmetic", "--scale", "0.7")
    base, branches = _np(family[0]), [_np(b) for b in family[1]]
    for key, value in merged.items():
        expected = base[key] + 0.7 * sum(b[key] - base[key] for b in branches)
        np.testing.assert_allclose(value, expected, atol=1e-6)
    assert config["vitkd"]["merge"]["parameters"] == {"scale": 0.7}


def test_task_arithmetic_with_one_over_n_is_averaging(
    tmp_path: Path, family: tuple[Path, list[Path]]
) -> None:
    ta, _ = _merged(tmp_path, family, "--method", "task-arithmetic", "--scale", str(1 / 3))
    avg, _ = _merged(tmp_path, family, "--method", "average")
    for key in ta:
        np.testing.assert_allclose(ta[key], avg[key], atol=1e-6)


@pytest.mark.parametrize(("keep", "scale"), [(0.2, 1.0), (0.5, 0.6), (1.0, 1.0)])
def test_ties_matches_the_step_by_step_reference(
    tmp_path: Path, family: tuple[Path, list[Path]], keep: float, scale: float
) -> None:
    merged, config = _merged(
        tmp_path, family, "--method", "ties", "--keep", str(keep), "--scale", str(scale)
    )
    expected = _ties_reference([_np(b) for b in family[1]], _np(family[0]), keep, scale)
    for key, value in merged.items():
        np.testing.assert_allclose(value, expected[key], atol=1e-6, err_msg=key)
    assert config["vitkd"]["merge"]["parameters"] == {"scale": scale, "keep": keep}


def test_ties_on_a_worked_example() -> None:
    base = {"w": torch.zeros(4)}
    states = [{"w": torch.tensor([3.0, -1.0, 0.5, -2.0])}, {"w": torch.tensor([-1.0, 2, 0.4, -3])}]
    trimmed = [trim({"w": s["w"]}, 0.5) for s in states]
    assert trimmed[0]["w"].tolist() == [3, 0, 0, -2] and trimmed[1]["w"].tolist() == [0, 2, 0, -3]
    # sum [3, 2, 0, -5]: the 0 takes the majority sign (+1, from two + against one -)
    assert elect_sign(trimmed)["w"].tolist() == [1, 1, 1, -1]
    assert ties_merge(states, base, keep=0.5)["w"].tolist() == [3, 2, 0, -2.5]


def test_record_checksums_and_plain_timm_load(
    tmp_path: Path, family: tuple[Path, list[Path]]
) -> None:
    base, branches = family
    _, config = _merged(tmp_path, family, "--method", "ties")
    record = config["vitkd"]["merge"]

    def digest(folder: Path) -> str:
        return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()

    assert record["inputs"] == [{"path": str(b), "sha256": digest(b)} for b in branches]
    # no --base: the initialisation the branches record is used
    assert record["base"] == {"path": str(base), "sha256": digest(base)}
    assert config["vitkd"]["source"] == "merge" and config["vitkd"]["teacher"] == "demo"
    out = tmp_path / "merged"
    model = timm.create_model(
        config["architecture"],
        pretrained=True,
        pretrained_cfg_overlay=dict(config["pretrained_cfg"], file=str(out / "model.safetensors")),
        **config["model_args"],
    )
    ours = load_exported(out).model.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, ours[key]), key
