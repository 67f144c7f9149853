"""Model presets by name (H-optimus-0 teacher, H0-mini student) and timm architecture specs."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any

import timm

# H-optimus-0 / H0-mini normalisation, from the H-optimus-0 model card
# (https://huggingface.co/bioptimus/H-optimus-0) and H0-mini's (https://huggingface.co/bioptimus/H0-mini).
PATHOLOGY_MEAN = (0.707223, 0.578729, 0.703617)
PATHOLOGY_STD = (0.211883, 0.230117, 0.177517)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Constructor kwargs whose values are classes; specs keep them as dotted strings so they stay JSON.
CLASS_KWARGS = (
    "mlp_layer",
    "act_layer",
    "norm_layer",
    "embed_layer",
    "embed_norm_layer",
    "block_fn",
    "attn_layer",
)
# Only these packages may be imported when a dotted class name is resolved from a config file.
_ALLOWED_IMPORT_PREFIXES = ("timm.", "torch.")


class UnknownModelError(ValueError):
    """A model name that is neither a vitkd preset nor a timm architecture."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build a backbone: timm arch, JSON-safe kwargs, normalisation, size.

    Class-valued kwargs (``mlp_layer``, ``act_layer``, ...) are stored as dotted import paths
    (``"timm.layers.SwiGLUPacked"``) so the spec serialises to YAML/JSON; ``build_kwargs()``
    resolves them.
    """

    arch: str
    kwargs: dict[str, Any]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    img_size: int
    name: str = field(default="", compare=False)

    def build_kwargs(self) -> dict[str, Any]:
        """Return the kwargs for ``timm.create_model`` with dotted class names imported."""
        return {k: resolve_class_kwarg(k, v) for k, v in self.kwargs.items()}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (inverse of ``ModelSpec.from_dict``)."""
        return {
            "name": self.name,
            "arch": self.arch,
            "kwargs": dict(self.kwargs),
            "mean": list(self.mean),
            "std": list(self.std),
            "img_size": self.img_size,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Rebuild a spec written by ``to_dict``."""
        return cls(
            arch=data["arch"],
            kwargs=dict(data["kwargs"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            img_size=int(data["img_size"]),
            name=data.get("name", ""),
        )


PRESETS: dict[str, ModelSpec] = {
    "h-optimus-0": ModelSpec(
        arch="vit_giant_patch14_reg4_dinov2",
        kwargs={
            "init_values": 1e-5,
            "img_size": 224,
            "num_classes": 0,
            "dynamic_img_size": False,
        },
        mean=PATHOLOGY_MEAN,
        std=PATHOLOGY_STD,
        img_size=224,
        name="h-optimus-0",
    ),
    "h0-mini": ModelSpec(
        arch="vit_base_patch14_reg4_dinov2",
        kwargs={
            # DINOv2's SwiGLU hidden width 2/3 * 4 * 768 = 2048, packed (x2) for timm: 4096 / 768,
            # the convention of timm's ViT-g/14 DINOv2 (mlp_ratio 2.66667 * 2); gives the ~86 M
            # parameters of H0-mini (Filiot et al. 2025, https://arxiv.org/abs/2501.16239);
            # mlp_ratio 4 would give 71.6 M
            "mlp_ratio": 5.33334,
            "mlp_layer": "timm.layers.SwiGLUPacked",
            "act_layer": "torch.nn.SiLU",
            "img_size": 224,
            "num_classes": 0,
            # local crops are 98 px, so the student must accept more than one input size
            "dynamic_img_size": True,
        },
        mean=PATHOLOGY_MEAN,
        std=PATHOLOGY_STD,
        img_size=224,
        name="h0-mini",
    ),
}


def class_to_path(obj: Any) -> str | None:
    """Return the public dotted path of a layer (``timm.layers.SwiGLUPacked``), None if unknown.

    Layers such as ``SwiGLUPacked`` are ``functools.partial`` objects, so this searches the
    public namespaces for the object itself rather than trusting ``__name__``.
    """
    for public in ("timm.layers", "torch.nn"):
        for attr, value in vars(importlib.import_module(public)).items():
            if value is obj and not attr.startswith("_"):
                return f"{public}.{attr}"
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    return None


def resolve_class_kwarg(key: str, value: Any) -> Any:
    """Import a dotted class name given for a class-valued kwarg; pass anything else through.

    Plain names without a dot (``"silu"``, ``"layernorm"``) are left to timm's own resolvers.
    """
    if key not in CLASS_KWARGS or not isinstance(value, str) or "." not in value:
        return value
    if not value.startswith(_ALLOWED_IMPORT_PREFIXES):
        raise ValueError(
            f"model kwarg {key}={value!r}: only classes from {', '.join(_ALLOWED_IMPORT_PREFIXES)} "
            "can be named in a config; pass the class object from Python instead"
        )
    module_name, _, attr = value.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"model kwarg {key}={value!r} does not name an importable class ({err}); "
            "use a path such as 'timm.layers.SwiGLUPacked' or 'torch.nn.SiLU'"
        ) from err


def _jsonable_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Replace layer objects in class-valued kwargs by their dotted path where one exists."""
    out = {}
    for key, value in kwargs.items():
        if key in CLASS_KWARGS and not isinstance(value, str):
            value = class_to_path(value) or value  # unknown objects still build, but cannot export
        out[key] = value
    return out


def _timm_defaults(arch: str) -> tuple[tuple, tuple]:
    """Mean/std from timm's registered pretrained config of ``arch`` (no download)."""
    cfg = timm.get_pretrained_cfg(arch)
    if cfg is None or cfg.mean is None or cfg.std is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(cfg.mean), tuple(cfg.std)


def resolve_spec(name: str | ModelSpec, **kwargs_overrides: Any) -> ModelSpec:
    """Resolve a preset name or timm architecture into a ``ModelSpec``.

    Args:
        name: a preset (``h-optimus-0``, ``h0-mini``), any timm architecture name (mean/std then
            come from timm's registered config, ImageNet if none), or a ``ModelSpec``.
        **kwargs_overrides: timm constructor kwargs to override (``depth=2``, ``img_size=112``);
            ``mean`` and ``std`` override the normalisation instead.
    """
    overrides = dict(kwargs_overrides)
    mean = overrides.pop("mean", None)
    std = overrides.pop("std", None)
    if isinstance(name, ModelSpec):
        base = name
    elif name in PRESETS:
        base = PRESETS[name]
    elif isinstance(name, str) and timm.is_model(name):
        d_mean, d_std = _timm_defaults(name)
        base = ModelSpec(
            arch=name,
            kwargs={"img_size": 224, "num_classes": 0},
            mean=d_mean,
            std=d_std,
            img_size=224,
            name=name,
        )
    else:
        raise UnknownModelError(
            f"unknown model {name!r}: not a vitkd preset ({', '.join(sorted(PRESETS))}) nor a timm "
            'architecture; list timm names with `python -c "import timm; '
            "print(timm.list_models('vit_*'))\"`"
        )
    kwargs = {**base.kwargs, **_jsonable_kwargs(overrides)}
    img_size = kwargs.get("img_size", base.img_size)
    if isinstance(img_size, (tuple, list)):
        if len(set(img_size)) != 1:
            raise ValueError(
                f"img_size={img_size!r}: vitkd backbones use square inputs; give one int"
            )
        img_size = img_size[0]
    kwargs["img_size"] = int(img_size)
    for label, value in (("mean", mean), ("std", std)):
        if value is not None and len(value) != 3:
            raise ValueError(f"{label}={value!r}: give three per-channel values (R, G, B)")
    return replace(
        base,
        kwargs=kwargs,
        img_size=int(img_size),
        mean=tuple(float(v) for v in (mean if mean is not None else base.mean)),
        std=tuple(float(v) for v in (std if std is not None else base.std)),
    )
