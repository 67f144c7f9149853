"""Weights saved from a torch.compile'd model (`_orig_mod.` keys) load like plain ones."""

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from vitkd.models import load_state_dict_file, load_weights


def _model() -> torch.nn.Module:
    return timm.create_model(
        "vit_small_patch14_reg4_dinov2", depth=1, embed_dim=32, num_heads=2, img_size=56
    )


@pytest.mark.parametrize("wrap", ["", "module.", "model."])
def test_compiled_state_dict_loads(wrap: str, tmp_path: Path) -> None:
    torch.manual_seed(3)
    compiled = torch.compile(_model())  # state_dict needs no compilation, only the wrapper
    saved = {f"{wrap}{k}": v for k, v in compiled.state_dict().items()}
    assert all("_orig_mod." in k for k in saved)
    path = tmp_path / "w.safetensors"
    save_file(saved, str(path))
    plain = compiled._orig_mod.state_dict()
    state = load_state_dict_file(path)
    assert state.keys() == plain.keys()
    model = _model()
    load_weights(model, path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in plain.items())


def test_orig_mod_inside_a_name_is_kept(tmp_path: Path) -> None:
    state = {"blocks.my_orig_mod.weight": torch.zeros(1), "a._orig_mod.b": torch.ones(1)}
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    assert set(load_state_dict_file(path)) == {"blocks.my_orig_mod.weight", "a.b"}
