"""Presets and spec resolution."""

import json

import pytest
import timm
import torch
from timm.layers import SwiGLUPacked

from vitkd.models import PRESETS, ModelSpec, UnknownModelError, resolve_spec

PATH_MEAN = (0.707223, 0.578729, 0.703617)
PATH_STD = (0.211883, 0.230117, 0.177517)


def test_presets_match_reference() -> None:
    teacher, student = PRESETS["h-optimus-0"], PRESETS["h0-mini"]
    assert teacher.arch == "vit_giant_patch14_reg4_dinov2"
    assert teacher.kwargs == {
        "init_values": 1e-5,
        "img_size": 224,
        "num_classes": 0,
        "dynamic_img_size": False,
    }
    assert student.arch == "vit_base_patch14_reg4_dinov2"
    assert student.kwargs["mlp_layer"] == "timm.layers.SwiGLUPacked"
    assert student.kwargs["act_layer"] == "torch.nn.SiLU"
    assert student.kwargs["dynamic_img_size"] is True
    for spec in (teacher, student):
        assert spec.mean == PATH_MEAN and spec.std == PATH_STD and spec.img_size == 224


def test_build_kwargs_imports_classes() -> None:
    kwargs = resolve_spec("h0-mini").build_kwargs()
    assert kwargs["mlp_layer"] is SwiGLUPacked
    assert kwargs["act_layer"] is torch.nn.SiLU


def test_overrides_merge_and_keep_name() -> None:
    spec = resolve_spec("h0-mini", depth=2, img_size=112, mean=(0.5, 0.5, 0.5))
    assert spec.name == "h0-mini"
    assert spec.kwargs["depth"] == 2 and spec.kwargs["mlp_layer"] == "timm.layers.SwiGLUPacked"
    assert spec.img_size == 112 and spec.kwargs["img_size"] == 112
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == PATH_STD
    assert PRESETS["h0-mini"].kwargs.get("depth") is None  # presets are not mutated


def test_timm_name_takes_timm_normalisation() -> None:
    spec = resolve_spec("vit_small_patch16_224")
    cfg = timm.get_pretrained_cfg("vit_small_patch16_224")
    assert spec.arch == "vit_small_patch16_224"
    assert spec.mean == tuple(cfg.mean) and spec.std == tuple(cfg.std)
    assert spec.kwargs == {"img_size": 224, "num_classes": 0}


def test_class_override_is_stored_as_dotted_path() -> None:
    spec = resolve_spec("vit_small_patch14_reg4_dinov2", mlp_layer=SwiGLUPacked)
    assert spec.kwargs["mlp_layer"] == "timm.layers.SwiGLUPacked"
    assert spec.build_kwargs()["mlp_layer"] is SwiGLUPacked


def test_spec_roundtrips_through_json() -> None:
    spec = resolve_spec("h0-mini", depth=3)
    again = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.name == "h0-mini"


def test_unknown_name_lists_presets() -> None:
    with pytest.raises(UnknownModelError, match=r"'vit_nonexistent'.*h-optimus-0, h0-mini"):
        resolve_spec("vit_nonexistent")


def test_class_paths_outside_timm_and_torch_are_refused() -> None:
    spec = resolve_spec("h0-mini", mlp_layer="os.system")
    with pytest.raises(ValueError, match=r"mlp_layer='os.system'"):
        spec.build_kwargs()


def test_bad_mean_and_non_square_size() -> None:
    with pytest.raises(ValueError, match="three per-channel"):
        resolve_spec("h0-mini", mean=(0.5, 0.5))
    with pytest.raises(ValueError, match="square"):
        resolve_spec("h0-mini", img_size=(224, 112))


def test_full_size_presets_have_the_reference_parameter_counts() -> None:
    # model cards / Filiot et al. 2025 (arXiv:2501.16239): H-optimus-0 1.13 B, H0-mini ~86 M (SwiGLU hidden 2048 = DINOv2's 2/3 * 4 * 768)
    counts = {}
    for name in ("h-optimus-0", "h0-mini"):
        spec = resolve_spec(name)
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            model = timm.create_model(spec.arch, **spec.build_kwargs())
        counts[name] = sum(p.numel() for p in model.parameters())
        if name == "h0-mini":
            assert model.blocks[0].mlp.fc2.in_features == 2048
    assert 1.12e9 < counts["h-optimus-0"] < 1.14e9
    assert 85e6 < counts["h0-mini"] < 87e6
