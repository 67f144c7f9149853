"""Exported adaptors: map a student's embedding into each teacher's feature space."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from slides.atomic import atomic_path
from vitkd.models.adaptor import FeatureAdaptor
from vitkd.models.phis import PhiS

ADAPTORS_NAME = "adaptors.safetensors"


def adaptor_tensors(
    state: Mapping[str, Tensor], keys: list[str], standardized: bool
) -> dict[str, Tensor]:
    """The adaptor (and PHI-S) weights of a `DistillationModule` state dict, renamed
    `<teacher key>.<objective key>` (e.g. `uni.cls_adaptor.weight`,
    `uni.levels.96.cls_adaptor.weight`) and `<teacher key>.phis_<cls|patch>.<buffer>`.

    Args:
        state: the module's state dict (live or from a checkpoint).
        keys: the teacher keys in config order (the first one's objective is `objective.`).
        standardized: whether the run fitted PHI-S (`model.balance.standardize: phis`).
    """
    out: dict[str, Tensor] = {}
    for i, key in enumerate(keys):
        prefix = "objective." if i == 0 else f"extra_objectives.{key}."
        for name, value in state.items():
            if name.startswith(prefix) and "adaptor" in name:
                out[f"{key}.{name[len(prefix) :]}"] = value.detach().cpu().contiguous()
        if standardized:
            for part in ("cls", "patch"):
                stem = f"standardizers.{key}_{part}."
                for name, value in state.items():
                    if name.startswith(stem):
                        out[f"{key}.phis_{part}.{name[len(stem) :]}"] = value.detach().cpu()
    return out


def write_adaptors(out_dir: str | Path, tensors: dict[str, Tensor]) -> Path:
    """Write `adaptors.safetensors` into `out_dir` atomically."""
    path = Path(out_dir) / ADAPTORS_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    return path


class TeacherSpace(nn.Module):
    """Student embedding (..., D) -> one teacher's feature space (..., Dt): the first `size`
    dimensions through that teacher's trained adaptor, then PHI-S undone when the run used it."""

    def __init__(self, adaptor: nn.Module, size: int, phis: PhiS | None) -> None:
        super().__init__()
        self.adaptor, self.size, self.phis = adaptor, size, phis

    def forward(self, x: Tensor) -> Tensor:
        """Map student tokens to teacher-space tokens."""
        y = self.adaptor(x[..., : self.size].float())
        return self.phis.inverse(y) if self.phis is not None else y


def _adaptor_from(weights: dict[str, Tensor], stem: str) -> nn.Module:
    if f"{stem}.weight" in weights:
        w = weights[f"{stem}.weight"]
        layer = nn.Linear(w.shape[1], w.shape[0])
        layer.load_state_dict({"weight": w, "bias": weights[f"{stem}.bias"]})
        return layer
    first, last = weights[f"{stem}.mlp.0.weight"], weights[f"{stem}.mlp.2.weight"]
    mlp = FeatureAdaptor(first.shape[1], last.shape[0], first.shape[0])
    mlp.load_state_dict({k[len(stem) + 1 :]: v for k, v in weights.items() if k.startswith(stem)})
    return mlp


def load_teacher_space(
    model_dir: str | Path, teacher: str, tokens: str = "cls", size: int | None = None
) -> TeacherSpace:
    """The exported adaptor of `teacher` (its key) for `cls` or `patch` tokens, at nested size
    `size` (default: the full width).

    Raises:
        FileNotFoundError / ValueError: naming the file, the teacher keys or sizes it holds.
    """
    model_dir = Path(model_dir).expanduser()
    path = model_dir / ADAPTORS_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: this export holds no adaptors (exports of feature distillation "
            "runs since vitkd 0.1 do; re-export the run's checkpoint)"
        )
    info: dict[str, Any] = json.loads((model_dir / "config.json").read_text())["vitkd"]["adaptors"]
    keys = [t["key"] for t in info["teachers"]]
    if teacher not in keys:
        raise ValueError(f"{path}: no adaptor for teacher {teacher!r}; it has {keys}")
    if tokens not in ("cls", "patch"):
        raise ValueError(f"tokens={tokens!r}: choose 'cls' or 'patch'")
    weights = load_file(str(path))
    sizes = info.get("matryoshka")
    if sizes:
        size = size or max(sizes)
        if size not in sizes:
            raise ValueError(f"{path}: size {size} has no adaptor; trained sizes are {sizes}")
        stem = f"{teacher}.levels.{size}.{tokens}_adaptor"
    else:
        if size not in (None, info["width"]):
            raise ValueError(
                f"{path}: this model was trained without nested sizes; size must be "
                f"{info['width']}, got {size}"
            )
        size = info["width"]
        stem = f"{teacher}.{tokens}_adaptor"
    if not any(k.startswith(stem + ".") for k in weights):
        raise ValueError(f"{path}: no {tokens} adaptor for teacher {teacher!r} (loss weight 0?)")
    phis = None
    prefix = f"{teacher}.phis_{tokens}."
    if any(k.startswith(prefix) for k in weights):
        mean = weights[prefix + "mean"]
        phis = PhiS(len(mean))
        phis.load_state_dict(
            {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        )
    return TeacherSpace(_adaptor_from(weights, stem), size, phis).eval().requires_grad_(False)
