"""ViT backbone wrapper: own normalisation, CLS/register/patch tokens, iBOT mask token; builders."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import timm
import torch
from timm.models import checkpoint_seq
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from vitkd.models.export_spec import check_export_spec
from vitkd.models.presets import ModelSpec, resolve_spec
from vitkd.models.weights import load_weights

_log = logging.getLogger(__name__)

EmbedMode = Literal["cls", "cls+mean", "patch"]


@dataclass
class Tokens:
    """Final-norm output tokens of a ViT, split by role.

    Attributes:
        cls: (B, D) class token.
        registers: (B, R, D) register tokens (R may be 0).
        patches: (B, N, D) patch tokens in row-major order over ``grid``.
        grid: (h, w) patch grid, ``h * w == N``.
    """

    cls: Tensor
    registers: Tensor
    patches: Tensor
    grid: tuple[int, int]


class Backbone(nn.Module):
    """A timm ``VisionTransformer`` that takes uint8 or [0, 1] crops and normalises them itself.

    Teacher and student each carry their own mean/std, so their normalisations never mix.
    With ``with_mask_token`` an iBOT mask token replaces masked patch embeddings before the
    position embedding is added (DINOv2 convention).
    """

    def __init__(self, spec: ModelSpec, with_mask_token: bool = False) -> None:
        """Build the timm model described by ``spec`` with random weights."""
        super().__init__()
        try:
            model = timm.create_model(spec.arch, pretrained=False, **spec.build_kwargs())
        except TypeError as err:  # an unknown constructor kwarg for this architecture
            raise ValueError(
                f"cannot build {spec.arch!r} with kwargs {spec.kwargs}: {err}. vitkd backbones are "
                "timm VisionTransformers (e.g. vit_base_patch14_reg4_dinov2); check the kwarg names"
            ) from err
        if not isinstance(model, VisionTransformer):
            raise ValueError(
                f"model {spec.arch!r} is a {type(model).__name__}; vitkd backbones need a timm "
                "VisionTransformer (e.g. vit_base_patch14_reg4_dinov2)"
            )
        if not model.has_class_token:
            raise ValueError(f"model {spec.arch!r} has no class token; use a ViT with class_token")
        patch = tuple(model.patch_embed.patch_size)
        if patch[0] != patch[1]:
            raise ValueError(f"model {spec.arch!r} has non-square patches {patch}; use square ones")
        self.spec = spec
        self.model = model
        self.embed_dim = int(model.embed_dim)
        self.patch_size = int(patch[0])
        self.num_prefix_tokens = int(model.num_prefix_tokens)
        self.num_registers = int(model.num_reg_tokens)
        self.frozen = False
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        self.mask_token = nn.Parameter(torch.zeros(1, self.embed_dim)) if with_mask_token else None

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Backbone:
        # Keep mean/std exact fp32 on the current device even after .to(bfloat16).
        super()._apply(fn, recurse)
        device = self.mean.device
        self.mean = torch.tensor(self.spec.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(self.spec.std, device=device).view(1, 3, 1, 1)
        return self

    @property
    def dynamic_img_size(self) -> bool:
        """Whether the model accepts input sizes other than ``spec.img_size``."""
        return bool(self.model.dynamic_img_size)

    def freeze(self) -> Backbone:
        """Stop gradients and pin eval mode, also through later ``.train()`` calls on parents."""
        self.requires_grad_(False)
        self.frozen = True
        return self.eval()

    def train(self, mode: bool = True) -> Backbone:
        """Set training mode; a frozen backbone always stays in eval mode."""
        return super().train(mode and not self.frozen)

    def normalize(self, x: Tensor) -> Tensor:
        """Map uint8 [0, 255] or float [0, 1] images (B, 3, H, W) to normalised model input."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got shape {tuple(x.shape)}")
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        x = (x - self.mean.float()) / self.std.float()
        return x.to(self.model.patch_embed.proj.weight.dtype)

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid (h, w) produced for an input of ``height`` x ``width`` pixels."""
        if self.model.patch_embed.dynamic_img_pad:
            return (-(-height // self.patch_size), -(-width // self.patch_size))
        return (height // self.patch_size, width // self.patch_size)

    def _check_size(self, height: int, width: int) -> None:
        size = self.spec.img_size
        if not self.dynamic_img_size and (height, width) != (size, size):
            raise ValueError(
                f"{self.spec.arch} was built for {size}x{size} inputs, got {height}x{width}; "
                "build it with dynamic_img_size=True to accept other sizes"
            )
        if not self.model.patch_embed.dynamic_img_pad and (
            height % self.patch_size or width % self.patch_size
        ):
            raise ValueError(
                f"input {height}x{width} is not a multiple of the patch size {self.patch_size}; "
                f"use crops whose sides are multiples of {self.patch_size}"
            )

    def _apply_mask(self, x: Tensor, masks: Tensor) -> Tensor:
        if self.mask_token is None:
            raise ValueError(
                "masks were given but this backbone has no mask token; "
                "build it with build_student(...) or with_mask_token=True"
            )
        num = x.shape[1] * x.shape[2] if x.ndim == 4 else x.shape[1]
        if masks.dtype != torch.bool or tuple(masks.shape) != (x.shape[0], num):
            raise ValueError(
                f"masks must be a bool tensor of shape (B, N) = ({x.shape[0]}, {num}), "
                f"got {masks.dtype} {tuple(masks.shape)}"
            )
        masks = masks.view(x.shape[:-1])  # (B, H, W) for dynamic-size NHWC patch embeddings
        return torch.where(masks.unsqueeze(-1), self.mask_token.to(x.dtype), x)

    def forward_tokens(self, x: Tensor, masks: Tensor | None = None) -> Tokens:
        """Run the ViT and split the output tokens.

        Args:
            x: images (B, 3, H, W), uint8 in [0, 255] or float in [0, 1].
            masks: optional bool (B, N); True patches are replaced by the mask token.
        """
        self._check_size(x.shape[-2], x.shape[-1])
        grid = self.grid_for(x.shape[-2], x.shape[-1])
        m = self.model
        h = m.patch_embed(self.normalize(x))
        if masks is not None:
            h = self._apply_mask(h, masks)
        h = m._pos_embed(h)
        h = m.patch_drop(h)
        h = m.norm_pre(h)
        if m.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            h = checkpoint_seq(m.blocks, h)
        else:
            h = m.blocks(h)
        h = m.norm(h)
        return Tokens(
            cls=h[:, 0],
            registers=h[:, 1 : self.num_prefix_tokens],
            patches=h[:, self.num_prefix_tokens :],
            grid=grid,
        )

    def forward(self, x: Tensor) -> Tensor:
        """CLS embedding (B, D) of uint8 or [0, 1] images."""
        return self.forward_tokens(x).cls

    def embed(self, x: Tensor, tokens: EmbedMode = "cls") -> Tensor:
        """Embeddings: ``cls`` (B, D), ``cls+mean`` (B, 2D) with the mean patch token, or ``patch``
        (B, N, D)."""
        out = self.forward_tokens(x)
        if tokens == "cls":
            return out.cls
        if tokens == "cls+mean":
            return torch.cat([out.cls, out.patches.mean(dim=1)], dim=-1)
        if tokens == "patch":
            return out.patches
        raise ValueError(f"tokens={tokens!r}: choose 'cls', 'cls+mean' or 'patch'")


def build_backbone(
    name: str | ModelSpec,
    weights: str | Path | None = None,
    strict: bool = True,
    *,
    with_mask_token: bool = False,
    **kwargs: object,
) -> Backbone:
    """Build a backbone from a preset / timm name and optional local weights.

    Args:
        name: preset (``h-optimus-0``, ``h0-mini``), timm architecture or ``ModelSpec``.
        weights: local ``.safetensors``/``.bin``/``.pth`` file or HF-style folder; None keeps
            timm's random init.
        strict: require every key to match (see ``load_weights``).
        with_mask_token: add a learnable iBOT mask token.
        **kwargs: timm constructor overrides, or ``mean``/``std``.
    """
    spec = resolve_spec(name, **kwargs)
    backbone = Backbone(spec, with_mask_token=with_mask_token)
    if weights is not None:
        check_export_spec(spec, weights)  # a vitkd export says what it is: never load it askew
        load_weights(backbone.model, weights, strict=strict)
        _log.info("%s: loaded weights from %s", spec.name or spec.arch, weights)
    return backbone


def build_teacher(
    name: str | ModelSpec,
    weights: str | Path | None = None,
    strict: bool = True,
    dtype: torch.dtype | None = None,
    *,
    seed: int = 0,
    **kwargs: object,
) -> Backbone:
    """Build a frozen teacher: no gradients, eval mode pinned, optionally cast to ``dtype``.

    Without ``weights`` the teacher is randomly initialised with a fixed ``seed`` (demos, tests).
    """
    if weights is None:
        _log.warning(
            "teacher %s: no weights given, random init with fixed seed %d (demo/test only)",
            name if isinstance(name, str) else name.arch,
            seed,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            teacher = build_backbone(name, None, strict, **kwargs)
    else:
        teacher = build_backbone(name, weights, strict, **kwargs)
    if dtype is not None:
        teacher = teacher.to(dtype=dtype)
    return teacher.freeze()


def build_student(
    name: str | ModelSpec,
    weights: str | Path | None = None,
    strict: bool = True,
    *,
    with_mask_token: bool = True,
    **kwargs: object,
) -> Backbone:
    """Build a trainable student, with an iBOT mask token unless ``with_mask_token=False``.

    ``dynamic_img_size`` defaults to True so it takes both global (224) and local (98) crops.
    Without masked forwards (``targets: features``) drop the mask token, or DDP will report
    it as an unused parameter.
    """
    kwargs.setdefault("dynamic_img_size", True)
    return build_backbone(name, weights, strict, with_mask_token=with_mask_token, **kwargs)
