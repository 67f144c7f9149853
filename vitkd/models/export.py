"""Export a backbone as ``model.safetensors`` + timm-style ``config.json``, and load it back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import timm.layers
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from slides.atomic import atomic_path, write_text_atomic
from vitkd.models.backbone import Backbone, build_backbone
from vitkd.models.presets import CLASS_KWARGS, ModelSpec, resolve_class_kwarg

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _timm_act_name(value: Any) -> str | None:
    """The timm activation name that resolves to exactly this class (``nn.SiLU`` -> ``silu``)."""
    cls = resolve_class_kwarg("act_layer", value)
    if isinstance(cls, str):
        return cls
    name = getattr(cls, "__name__", "").lower()
    try:
        return name if timm.layers.get_act_layer(name) is cls else None
    except KeyError:
        return None


def split_model_args(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Split spec kwargs into JSON ``model_args`` timm can use as-is and dotted class paths.

    timm resolves activation names (``"silu"``) itself but not classes such as
    ``timm.layers.SwiGLUPacked``; those must be passed from Python when building.
    """
    model_args: dict[str, Any] = {}
    python_args: dict[str, str] = {}
    for key, value in kwargs.items():
        if key in CLASS_KWARGS and not (isinstance(value, str) and "." not in value):
            act = _timm_act_name(value) if key == "act_layer" else None
            if act is not None:
                model_args[key] = act
                continue
            if not isinstance(value, str):
                raise ValueError(f"model kwarg {key}={value!r} must be a dotted class path string")
            python_args[key] = value
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"model kwarg {key}={value!r} cannot be written to {CONFIG_NAME}; "
                "use JSON values (numbers, strings, lists) in the model kwargs"
            ) from err
        model_args[key] = value
    return model_args, python_args


def _vitkd_version() -> str:
    # Package metadata, not vitkd.__version__: pytest can import vitkd as a namespace package.
    try:
        return metadata.version("vitkd")
    except metadata.PackageNotFoundError:
        return "unknown"


def _pretrained_cfg(backbone: Backbone) -> dict[str, Any]:
    size = backbone.spec.img_size
    return {
        "custom_load": False,
        "input_size": [3, size, size],
        "fixed_input_size": not backbone.dynamic_img_size,
        "interpolation": "bicubic",
        "crop_pct": 1.0,
        "crop_mode": "center",
        "mean": list(backbone.spec.mean),
        "std": list(backbone.spec.std),
        "num_classes": backbone.model.num_classes,
        "pool_size": None,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
    }


def export_backbone(
    backbone: Backbone,
    out_dir: str | Path,
    extra: dict | None = None,
    state_dict: Mapping[str, Tensor] | None = None,
) -> Path:
    """Write ``model.safetensors`` (bare timm keys, no mask token) and timm's ``config.json``.

    The config follows timm's ``save_for_hf`` layout (``architecture``, ``num_classes``,
    ``num_features``, ``global_pool``, ``model_args``, ``pretrained_cfg``) plus a ``vitkd``
    block with the vitkd version, the full spec, the class kwargs timm cannot read from JSON
    (``python_model_args``) and ``extra``.

    Args:
        backbone: the backbone (its spec and timm model give the config).
        out_dir: the output folder.
        extra: JSON values added to the ``vitkd`` block.
        state_dict: the backbone's full weights with ``Backbone.state_dict()`` keys
            (``model.*``), written instead of ``backbone``'s own parameters: for a sharded
            (FSDP) backbone, whose own parameters are shards, pass `gather_state_dict`'s result.

    Returns:
        The output folder.
    """
    out = Path(out_dir).expanduser()
    model = backbone.model
    model_args, python_args = split_model_args(backbone.spec.kwargs)
    model_args.setdefault("num_classes", model.num_classes)
    model_args.setdefault("global_pool", model.global_pool)
    config: dict[str, Any] = {
        "architecture": backbone.spec.arch,
        "num_classes": model.num_classes,
        "num_features": model.num_features,
    }
    if isinstance(model.global_pool, str) and model.global_pool:
        config["global_pool"] = model.global_pool
    config["model_args"] = model_args
    config["pretrained_cfg"] = _pretrained_cfg(backbone)
    config["vitkd"] = {
        "version": _vitkd_version(),
        "spec": backbone.spec.to_dict(),
        "python_model_args": python_args,
        **(extra or {}),
    }
    # Serialise first so a non-JSON `extra` (or an empty `state_dict`) fails before any file
    # or folder is touched.
    text = json.dumps(config, indent=2)
    tensors = {
        k: v.detach().cpu().contiguous() for k, v in _timm_weights(model, state_dict).items()
    }
    out.mkdir(parents=True, exist_ok=True)
    # Weights first, config last: a folder with a config.json is complete.
    with atomic_path(out / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    write_text_atomic(out / CONFIG_NAME, text + "\n")
    return out


def gather_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """Full (unsharded) weights of ``module`` on CPU, for `export_backbone`'s ``state_dict``.

    Works for plain modules and FSDP2 (``fully_shard``, DTensor parameters) modules and their
    submodules. Under FSDP1 pass the root FSDP module and pick the submodule's keys: a
    submodule's parameters are views of a flat shard that only FSDP's state dict gathers. In a
    process group this is a collective: every rank must call it, rank 0 gets the weights and
    the other ranks ``{}``.
    """
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(module, options=options)


def _timm_weights(model: nn.Module, state_dict: Mapping[str, Tensor] | None) -> dict[str, Tensor]:
    if state_dict is None:
        return model.state_dict()
    weights = {k[len("model.") :]: v for k, v in state_dict.items() if k.startswith("model.")}
    if not weights:
        # e.g. the `{}` that `gather_state_dict` gives ranks other than 0
        raise ValueError("state_dict has no backbone weights (no 'model.*' keys)")
    return weights


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """Read ``config.json`` of an exported (or timm/HF) model folder."""
    path = Path(model_dir).expanduser() / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; pass a folder written by `python -m vitkd.export` "
            "(model.safetensors + config.json)"
        )
    return json.loads(path.read_text())


def timm_model_args(model_dir: str | Path) -> dict[str, Any]:
    """The kwargs for ``timm.create_model(architecture, ...)`` that rebuild an exported model,
    with class kwargs (``mlp_layer``) already imported."""
    config = read_config(model_dir)
    python_args = config.get("vitkd", {}).get("python_model_args", {})
    args = dict(config.get("model_args", {}))
    args.update({k: resolve_class_kwarg(k, v) for k, v in python_args.items()})
    return args


def load_exported(model_dir: str | Path, with_mask_token: bool = False) -> Backbone:
    """Load an exported folder (or any timm-style folder with a ViT) as a ``Backbone``, strictly."""
    model_dir = Path(model_dir).expanduser()
    config = read_config(model_dir)
    block = config.get("vitkd", {})
    if "spec" in block:
        spec = ModelSpec.from_dict(block["spec"])
    else:
        cfg = config.get("pretrained_cfg", {})
        args = {**config.get("model_args", {}), **block.get("python_model_args", {})}
        size = args.get("img_size", cfg.get("input_size", [3, 224, 224])[-1])
        spec = ModelSpec(
            arch=config["architecture"],
            kwargs=args,
            mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
            std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
            img_size=size[-1] if isinstance(size, (list, tuple)) else int(size),
            name=config["architecture"],
        )
    return build_backbone(spec, weights=model_dir, with_mask_token=with_mask_token)
