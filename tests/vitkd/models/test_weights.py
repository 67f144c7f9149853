"""Local weight loading: formats, wrappers, strictness and error messages."""

import json
import logging
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

from vitkd.models import (
    WeightsMismatchError,
    WeightsNotFoundError,
    load_state_dict_file,
    load_weights,
)

TINY_ARCH = "vit_small_patch14_reg4_dinov2"
TINY = {"depth": 1, "embed_dim": 32, "num_heads": 2}


def _model(**overrides: object) -> torch.nn.Module:
    return timm.create_model(TINY_ARCH, **{**TINY, "img_size": 56, "num_classes": 0, **overrides})


def _assert_same(model: torch.nn.Module, state: dict) -> None:
    got = model.state_dict()
    assert got.keys() == state.keys()
    for key, value in state.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0)


@pytest.fixture
def source() -> dict:
    torch.manual_seed(1)
    return {k: v.clone() for k, v in _model().state_dict().items()}


def _save(kind: str, state: dict, tmp_path: Path) -> Path:
    if kind == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file(state, str(path))
    elif kind == "bin":
        path = tmp_path / "w.bin"
        torch.save(state, path)
    elif kind == "pth-lightning":  # Lightning / DDP style: {"state_dict": {"module.x": ...}}
        path = tmp_path / "w.pth"
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    elif kind == "pt-model":
        path = tmp_path / "w.pt"
        torch.save({"model": {f"model.{k}": v for k, v in state.items()}}, path)
    elif kind == "hf-safetensors":
        path = tmp_path / "hf"
        path.mkdir()
        save_file(state, str(path / "model.safetensors"))
    elif kind == "hf-bin":
        path = tmp_path / "hf"
        path.mkdir()
        torch.save(state, path / "pytorch_model.bin")
    elif kind == "hf-sharded":
        path = tmp_path / "hf"
        path.mkdir()
        keys = sorted(state)
        halves = {"a.safetensors": keys[: len(keys) // 2], "b.safetensors": keys[len(keys) // 2 :]}
        for name, part in halves.items():
            save_file({k: state[k] for k in part}, str(path / name))
        index = {"weight_map": {k: n for n, part in halves.items() for k in part}}
        (path / "model.safetensors.index.json").write_text(json.dumps(index))
    return path


@pytest.mark.parametrize(
    "kind",
    ["safetensors", "bin", "pth-lightning", "pt-model", "hf-safetensors", "hf-bin", "hf-sharded"],
)
def test_formats_load_exactly(kind: str, source: dict, tmp_path: Path) -> None:
    path = _save(kind, source, tmp_path)
    _assert_same_dict(load_state_dict_file(path), source)
    model = _model()
    load_weights(model, path)
    _assert_same(model, source)


def _assert_same_dict(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_missing_and_unexpected_keys_are_listed(source: dict, tmp_path: Path) -> None:
    state = {k: v for k, v in source.items() if not k.startswith("blocks.0.attn")}
    state["head.extra"] = torch.zeros(3)
    path = _save("safetensors", state, tmp_path)
    with pytest.raises(WeightsMismatchError) as err:
        load_weights(_model(), path)
    msg = str(err.value)
    assert str(path) in msg
    assert "missing keys (4): blocks.0.attn.qkv.weight" in msg
    assert "unexpected keys (1): head.extra" in msg


def test_long_key_lists_are_truncated_with_counts(source: dict, tmp_path: Path) -> None:
    path = _save("safetensors", source, tmp_path)
    deeper = _model(depth=3)
    with pytest.raises(WeightsMismatchError, match=r"missing keys \(\d+\).*more\)") as err:
        load_weights(deeper, path)
    assert "blocks.2.norm1.weight" not in str(err.value)  # only the first 10 are listed


def test_shape_mismatch_is_listed(source: dict, tmp_path: Path) -> None:
    path = _save("safetensors", source, tmp_path)
    with pytest.raises(WeightsMismatchError, match=r"shape mismatches .*cls_token.*\(1, 1, 32\)"):
        load_weights(_model(embed_dim=48), path)


def test_non_strict_warns_and_keeps_missing(source: dict, tmp_path: Path, caplog) -> None:
    state = {k: v for k, v in source.items() if k != "norm.weight"}
    state["extra"] = torch.ones(1)
    path = _save("safetensors", state, tmp_path)
    model = _model()
    before = model.norm.weight.detach().clone()
    with caplog.at_level(logging.WARNING):
        load_weights(model, path, strict=False)
    assert "norm.weight" in caplog.text and "extra" in caplog.text
    assert torch.equal(model.norm.weight, before)
    assert torch.equal(model.cls_token, source["cls_token"])


def test_missing_file_says_local_only(tmp_path: Path) -> None:
    path = tmp_path / "nope.safetensors"
    with pytest.raises(WeightsNotFoundError, match="local files only") as err:
        load_weights(_model(), path)
    assert str(path) in str(err.value)
    with pytest.raises(WeightsNotFoundError, match="no weights file"):
        load_state_dict_file(tmp_path)


def test_ambiguous_wrapper_is_refused(source: dict, tmp_path: Path) -> None:
    path = tmp_path / "two.pth"
    torch.save({"model": source, "state_dict": source}, path)
    with pytest.raises(WeightsMismatchError, match="cannot find the state dict"):
        load_state_dict_file(path)


class _NotWeights:
    pass


def test_pickles_are_loaded_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": _NotWeights()}}, path)
    with pytest.raises(WeightsMismatchError, match="weights_only=True"):
        load_state_dict_file(path)


def test_pos_embed_is_resampled_by_timm_filter(tmp_path: Path) -> None:
    torch.manual_seed(2)
    big = _model(img_size=112)
    path = _save("safetensors", big.state_dict(), tmp_path)
    small = _model(img_size=56)
    load_weights(small, path)
    want = resample_abs_pos_embed(
        big.pos_embed.detach(), new_size=(4, 4), old_size=(8, 8), num_prefix_tokens=0
    )
    torch.testing.assert_close(small.pos_embed.detach(), want)
    torch.testing.assert_close(small.cls_token, big.cls_token)


def test_failed_timm_conversion_is_named_in_the_error_and_the_warning(
    source: dict, tmp_path: Path, monkeypatch, caplog
) -> None:
    def broken_filter(state: dict, model: torch.nn.Module) -> dict:
        raise ValueError("pos_embed cannot be resampled")

    monkeypatch.setattr(timm.models.vision_transformer, "checkpoint_filter_fn", broken_filter)
    state = {k: v for k, v in source.items() if k != "norm.weight"}
    path = _save("safetensors", state, tmp_path)
    with pytest.raises(
        WeightsMismatchError,
        match=r"(?s)missing keys.*checkpoint_filter_fn.*"
        r"ValueError: pos_embed cannot be resampled",
    ):
        load_weights(_model(), path)
    with caplog.at_level(logging.WARNING):
        load_weights(_model(), path, strict=False)
    assert "ValueError: pos_embed cannot be resampled" in caplog.text
