"""Export to model.safetensors + timm config.json, and loading it back with plain timm."""

import json
from importlib import metadata
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from timm.layers import SwiGLUPacked

from vitkd.models import (
    Backbone,
    build_student,
    build_teacher,
    export_backbone,
    load_exported,
    timm_model_args,
)

TINY = {"depth": 2, "embed_dim": 32, "num_heads": 2}


def _images(size: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(5)
    return torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=gen)


def _timm_embed(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """CLS embedding with timm's own preprocessing config (mean/std from config.json)."""
    cfg = timm.data.resolve_data_config(model=model)
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    return model.forward_features((x.float() / 255 - mean) / std)[:, 0]


@pytest.fixture
def student(tmp_path: Path) -> tuple[Backbone, Path]:
    torch.manual_seed(0)
    backbone = build_student("h0-mini", **TINY)
    with torch.no_grad():
        backbone.mask_token.fill_(3.0)
    out = export_backbone(backbone, tmp_path / "export", extra={"teacher": "h-optimus-0"})
    return backbone.eval(), out


def test_files_and_config_layout(student: tuple[Backbone, Path]) -> None:
    backbone, out = student
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "vit_base_patch14_reg4_dinov2"
    assert (config["num_classes"], config["num_features"], config["global_pool"]) == (
        0,
        32,
        "token",
    )
    args = config["model_args"]
    assert args["act_layer"] == "silu" and "mlp_layer" not in args
    assert args["dynamic_img_size"] is True and args["depth"] == 2 and args["img_size"] == 224
    cfg = config["pretrained_cfg"]
    assert cfg["mean"] == [0.707223, 0.578729, 0.703617] and cfg["input_size"] == [3, 224, 224]
    assert cfg["fixed_input_size"] is False and cfg["custom_load"] is False
    block = config["vitkd"]
    assert block["version"] == metadata.version("vitkd") and block["teacher"] == "h-optimus-0"
    assert block["python_model_args"] == {"mlp_layer": "timm.layers.SwiGLUPacked"}
    weights = load_file(str(out / "model.safetensors"))
    assert "mask_token" not in weights
    assert weights.keys() == backbone.model.state_dict().keys()


def test_plain_timm_loads_strictly_with_same_embeddings(student: tuple[Backbone, Path]) -> None:
    backbone, out = student
    config = json.loads((out / "config.json").read_text())
    kwargs = timm_model_args(out)
    assert kwargs["mlp_layer"] is SwiGLUPacked
    file = str(out / "model.safetensors")
    # the documented call: the exported pretrained_cfg as overlay brings mean/std along
    model = timm.create_model(
        config["architecture"],
        pretrained=True,
        pretrained_cfg_overlay=dict(config["pretrained_cfg"], file=file),
        **kwargs,
    ).eval()
    # the minimal call of the issue: weights only, normalisation done by hand
    minimal = timm.create_model(
        config["architecture"], pretrained=True, pretrained_cfg_overlay=dict(file=file), **kwargs
    ).eval()
    mean = torch.tensor(backbone.spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(backbone.spec.std).view(1, 3, 1, 1)
    for size in (224, 98):
        x = _images(size)
        with torch.no_grad():
            want = backbone(x)
            torch.testing.assert_close(_timm_embed(model, x), want)
            by_hand = minimal.forward_features((x.float() / 255 - mean) / std)[:, 0]
            torch.testing.assert_close(by_hand, want)
    # the same call is strict: one stray tensor in the file makes timm refuse it
    weights = load_file(file)
    weights["stray"] = torch.zeros(1)
    save_file(weights, file)
    with pytest.raises(RuntimeError, match="stray"):
        timm.create_model(
            config["architecture"],
            pretrained=True,
            pretrained_cfg_overlay=dict(file=file),
            **kwargs,
        )


@pytest.mark.skipif(
    not hasattr(timm.models._hub, "load_model_config_from_path"),
    reason="this timm version has no local-dir: model source",
)
def test_timm_local_dir(student: tuple[Backbone, Path]) -> None:
    backbone, out = student
    model = timm.create_model(f"local-dir:{out}", pretrained=True, mlp_layer=SwiGLUPacked).eval()
    x = _images(224)
    with torch.no_grad():
        torch.testing.assert_close(_timm_embed(model, x), backbone(x))
    # without the class kwarg timm builds a plain MLP, and the strict load says so loudly
    with pytest.raises(RuntimeError, match="size mismatch"):
        timm.create_model(f"local-dir:{out}", pretrained=True)


def test_load_exported_roundtrip(student: tuple[Backbone, Path]) -> None:
    backbone, out = student
    loaded = load_exported(out)
    assert loaded.spec == backbone.spec and loaded.mask_token is None
    x = _images(98)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), backbone(x), rtol=0, atol=0)


def test_load_exported_without_vitkd_block(student: tuple[Backbone, Path]) -> None:
    backbone, out = student
    config = json.loads((out / "config.json").read_text())
    python_args = config["vitkd"]["python_model_args"]
    config["vitkd"] = {"python_model_args": python_args}
    (out / "config.json").write_text(json.dumps(config))
    loaded = load_exported(out)
    assert loaded.spec.mean == backbone.spec.mean and loaded.spec.img_size == 224
    x = _images(224)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), backbone(x), rtol=0, atol=0)


def test_fixed_size_teacher_style_export(tmp_path: Path) -> None:
    # vit_small_patch16_224's registered cfg has 1000 classes and custom_load=True (npz): the
    # exported pretrained_cfg as overlay keeps timm's load strict and on the safetensors path.
    teacher = build_teacher("vit_small_patch16_224", img_size=64, **TINY)
    out = export_backbone(teacher, tmp_path / "t")
    config = json.loads((out / "config.json").read_text())
    model = timm.create_model(
        "vit_small_patch16_224",
        pretrained=True,
        pretrained_cfg_overlay=dict(config["pretrained_cfg"], file=str(out / "model.safetensors")),
        **timm_model_args(out),
    ).eval()
    x = _images(64)
    with torch.no_grad():
        torch.testing.assert_close(_timm_embed(model, x), teacher(x))


def test_reexport_overwrites_and_bad_extra_leaves_folder(student: tuple[Backbone, Path]) -> None:
    backbone, out = student
    with pytest.raises(TypeError):
        export_backbone(backbone, out, extra={"bad": object()})
    assert json.loads((out / "config.json").read_text())["vitkd"]["teacher"] == "h-optimus-0"
    export_backbone(backbone, out, extra={"teacher": "other"})
    assert json.loads((out / "config.json").read_text())["vitkd"]["teacher"] == "other"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]


def test_failed_weights_write_keeps_the_old_export_and_no_temp(
    student: tuple[Backbone, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    backbone, out = student
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def half_write(tensors: object, filename: str, metadata: object = None) -> None:
        Path(filename).write_bytes(b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr("vitkd.models.export.save_file", half_write)
    with pytest.raises(OSError, match="No space"):
        export_backbone(backbone, out, extra={"teacher": "other"})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_missing_config_is_explained(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json not found"):
        load_exported(tmp_path)
