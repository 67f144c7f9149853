"""Multi-crop on the device: workers decode tiles and draw numbers, the GPU cuts and colours crops.

`DeviceMultiCrop.sample` (in a DataLoader worker) draws the crop boxes and every augmentation
parameter of one tile from its draw seed; `DeviceMultiCropCollate` stacks tiles and parameters;
`DeviceMultiCrop.apply` (after the host-to-device copy) turns the batch into the usual multi-crop
batch: ``global``, ``local``, ``teacher`` uint8 view-major crops, ``masks``, ``mask_index``,
``n_images``.
The geometry and the parameters are the CPU path's (`vitkd.data.multicrop.MultiCrop`), drawn from
the same kind of per-draw seed, so a draw is reproducible whatever the device.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from vitkd.data.augment.geometry import sample_box
from vitkd.data.augment.macenko import estimate_stain_matrix
from vitkd.data.augment.presets import AugmentConfig, resolve_augment
from vitkd.data.collate import MaskConfig, MultiCropCollate, mask_index
from vitkd.data.gpu import ops
from vitkd.data.gpu.params import sample_params, stack_params, unsupported_ops
from vitkd.data.multicrop import TEACHER_VIEWS
from vitkd.data.multicrop_dataset import MultiCropDataset, draw_seed

log = logging.getLogger(__name__)

GROUPS = ("global", "teacher", "local")


class DeviceMultiCrop:
    """DINOv2 multi-crop whose pixel work runs on the training device (see module docstring).

    Args: as `vitkd.data.multicrop.MultiCrop`. The JPEG operation of the scanner family has no
    device version and is skipped (a warning says so); everything else of the presets is applied.
    """

    def __init__(
        self,
        global_size: int = 224,
        local_size: int = 98,
        n_global: int = 2,
        n_local: int = 8,
        global_scale: tuple[float, float] = (0.32, 1.0),
        local_scale: tuple[float, float] = (0.05, 0.32),
        augment: str | AugmentConfig = "pathology",
        teacher_view: str = "light",
    ) -> None:
        if teacher_view not in TEACHER_VIEWS:
            raise ValueError(f"teacher_view={teacher_view!r} is not one of {TEACHER_VIEWS}")
        self.global_size, self.local_size = global_size, local_size
        self.n_global, self.n_local = n_global, n_local
        self.global_scale, self.local_scale = tuple(global_scale), tuple(local_scale)
        self.augment = resolve_augment(augment)
        self.teacher_view = teacher_view
        self.teacher_aug = resolve_augment("light") if teacher_view == "light" else None
        self.mpp_jitter = self.augment.scanner.mpp_jitter
        s = self.augment.stain
        self.needs_stains = s.preset_p > 0 or s.macenko_p > 0
        skipped = unsupported_ops(self.augment)
        if skipped:
            log.warning(
                "augment_device=gpu: %s has no device version and is skipped; use "
                "data.augment_device: cpu for the complete %r preset",
                ", ".join(skipped),
                self.augment.name,
            )

    def sample(self, tile: np.ndarray, seed: int) -> dict[str, Any]:
        """Draw the boxes and parameters of one tile (CPU, cheap: no pixel work but a stain fit).

        Returns:
            ``boxes`` (n_g + n_l, 4) float32 x, y, w, h; ``flips`` (n_g + n_l,) bool; and
            per-crop parameter lists ``global``, ``teacher`` (n_g each) and ``local`` (n_l).
        """
        seq = np.random.SeedSequence(seed)
        geo_rng, student_rng, teacher_rng = (np.random.default_rng(s) for s in seq.spawn(3))
        h, w = tile.shape[:2]
        boxes = [
            sample_box(h, w, self.global_scale, geo_rng, mpp_jitter=self.mpp_jitter)
            for _ in range(self.n_global)
        ]
        boxes += [
            sample_box(h, w, self.local_scale, geo_rng, mpp_jitter=self.mpp_jitter)
            for _ in range(self.n_local)
        ]
        stains = estimate_stain_matrix(tile[::2, ::2]) if self.needs_stains else None
        views = ["global1" if i % 2 == 0 else "global2" for i in range(self.n_global)]
        student = [sample_params(self.augment, student_rng, v, stains) for v in views]
        if self.teacher_view == "same":
            teacher: list[dict] | None = None
        else:
            teacher = [sample_params(self.teacher_aug, teacher_rng, v) for v in views]
        local = [
            sample_params(self.augment, student_rng, "local", stains) for _ in range(self.n_local)
        ]
        return {
            "boxes": np.array([[b.x, b.y, b.w, b.h] for b in boxes], dtype=np.float32),
            "flips": np.array([b.flip for b in boxes], dtype=bool),
            "global": student,
            "teacher": teacher,
            "local": local,
        }

    def augment_crops(
        self,
        x: torch.Tensor,
        params: dict[str, torch.Tensor],
        active: list[str],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Apply the drawn operations to float crops (K, 3, S, S), in the CPU path's order."""
        p = params
        if "od_matrix" in active or "od_offset" in active:
            x = ops.od_affine(x, p["od_matrix"], p["od_offset"])
        if {"gains", "gamma", "brightness", "contrast"} & set(active):
            x = ops.tone(x, p["gains"], p["gamma"], p["brightness"], p["contrast"])
        if "hs_matrix" in active:
            x = ops.color_matrix(x, p["hs_matrix"])
        if "jitter" in active:
            x = ops.color_jitter(x, p["jitter"], p["jitter_order"])
        if "gray" in active:
            x = torch.where(p["gray"].view(-1, 1, 1, 1), ops.grayscale(x), x)
        if "color_blur" in active:
            x = ops.gaussian_blur(x, p["color_blur"], radius=4)  # DINOv2's 9x9 kernel
        if "defocus" in active:
            x = ops.defocus(x, p["defocus"])
        if "blur" in active:
            x = ops.gaussian_blur(x, p["blur"])
        if "downscale" in active:
            x = ops.downscale(x, p["downscale"])
        if "noise" in active:
            x = ops.add_noise(x, p["noise"], generator)
        if "sharpen" in active:
            x = ops.sharpen(x, p["sharpen"])
        if "solarize" in active:
            x = ops.solarize(x, p["solarize"])
        return x

    @torch.no_grad()
    def apply(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A collated device batch (from `DeviceMultiCropCollate`) -> the multi-crop batch."""
        tiles = batch["tiles"].float() / 255.0
        n = int(batch["n_images"])
        generator = torch.Generator(device=tiles.device).manual_seed(int(batch["seed"]))
        n_g = self.n_global
        out: dict[str, Any] = {"masks": batch["masks"], "n_images": n}
        if "mask_index" in batch:
            out["mask_index"] = batch["mask_index"]
        for group, size in (("global", self.global_size), ("local", self.local_size)):
            crops = ops.crop_resize(
                tiles,
                batch[f"{group}_index"],
                batch[f"{group}_boxes"],
                batch[f"{group}_flips"],
                size,
            )
            if group == "global" and self.teacher_view != "same":
                teacher = crops
                if self.teacher_view == "light":
                    teacher = self.augment_crops(
                        crops, batch["teacher_params"], batch["active"]["teacher"], generator
                    )
                out["teacher"] = ops.to_uint8(teacher)
            crops = self.augment_crops(
                crops, batch[f"{group}_params"], batch["active"][group], generator
            )
            out[group] = ops.to_uint8(crops)
        if self.teacher_view == "same":
            out["teacher"] = out["global"]
        if out["global"].shape[0] != n_g * n:
            raise ValueError(
                f"device batch has {out['global'].shape[0]} global crops, expected {n_g * n}"
            )
        return out


class DeviceMultiCropDataset(MultiCropDataset):
    """Item `draw`: tile `draw % len(tiles)` as uint8 (3, T, T) plus its crop draws.

    Args:
        tiles: a dataset returning a uint8 (H, W, 3) tile, or a tuple whose first element is one.
        transform: the device multi-crop (only its ``sample`` runs here).
        seed: base seed, combined with the draw id as in `MultiCropDataset`.
    """

    transform: DeviceMultiCrop

    def __getitem__(self, draw: int) -> dict[str, Any]:
        tile = self.tile(draw)
        if tile.dtype != np.uint8 or tile.ndim != 3 or tile.shape[2] != 3:
            raise ValueError(f"tiles must be uint8 (H, W, 3), got {tile.dtype} {tile.shape}")
        seed = draw_seed(self.seed, draw)
        sample = self.transform.sample(tile, seed)
        sample["tile"] = torch.from_numpy(np.ascontiguousarray(tile.transpose(2, 0, 1)))
        sample["seed"] = seed
        return sample


def _active(stacked: dict[str, np.ndarray]) -> list[str]:
    neutral = stack_params([{}] * 1)
    return [k for k, v in stacked.items() if not np.all(v == neutral[k])]


class DeviceMultiCropCollate(MultiCropCollate):
    """Stack tiles and draws view-major (crop ``v * B + b`` is view v of image b) plus iBOT masks
    (drawn as on the CPU path)."""

    def __init__(self, masking: MaskConfig, global_size: int, n_global: int) -> None:
        super().__init__(masking, global_size)
        self.n_global = n_global

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        shapes = {tuple(s["tile"].shape) for s in samples}
        if len(shapes) > 1:
            raise ValueError(
                f"augment_device=gpu needs tiles of one size per batch, got {sorted(shapes)}; "
                "use data.augment_device: cpu for tile folders of mixed sizes"
            )
        n, n_g = len(samples), self.n_global
        boxes = np.stack([s["boxes"] for s in samples])  # (B, V, 4)
        flips = np.stack([s["flips"] for s in samples])
        batch: dict[str, Any] = {"tiles": torch.stack([s["tile"] for s in samples]), "n_images": n}
        active: dict[str, list[str]] = {}
        for group, views in (("global", slice(0, n_g)), ("local", slice(n_g, None))):
            b = boxes[:, views].transpose(1, 0, 2).reshape(-1, 4)
            n_views = b.shape[0] // n if n else 0
            batch[f"{group}_boxes"] = torch.from_numpy(np.ascontiguousarray(b))
            batch[f"{group}_flips"] = torch.from_numpy(flips[:, views].T.reshape(-1).copy())
            batch[f"{group}_index"] = torch.arange(n).repeat(n_views)
        for group in GROUPS:
            if samples[0][group] is None:
                continue
            rows = [s[group][v] for v in range(len(samples[0][group])) for s in samples]
            stacked = stack_params(rows)
            active[group] = _active(stacked)
            batch[f"{group}_params"] = {k: torch.from_numpy(v) for k, v in stacked.items()}
        batch["active"] = active
        seed = sum(s["seed"] for s in samples) % 2**63
        batch["seed"] = seed
        batch["masks"] = self.masks(n_g * n, seed)
        batch["mask_index"] = mask_index(batch["masks"])
        return batch
