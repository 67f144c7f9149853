"""Multi-crop batches from cached tiles, with each teacher's targets tracked into the views.

Geometry is restricted to what moves tokens in a known way (the rule of the feature cache):
each global view is a square crop on the grid of cells of `unit` px (the lcm of the cached
teachers' patch sizes), resized to the global size, mirrored and turned by quarter turns. MPP
jitter and free-form RandomResizedCrop boxes are not used for global views; local views (CLS
targets only) keep them. Photometric stain and scanner augmentation is applied to the student's
views as in `MultiCrop`; the teacher's targets are of the clean cached image.

Crop sizes: one side (in cells) per batch, drawn from `global_scale` as an area fraction, so
every view of the batch has the same teacher grid. Cached tokens outside a view's crop are
dropped; each view is placed so that it holds at least one cached token of the first teacher
(an anchor drawn among them), and every view of the batch keeps the same number of tokens per
teacher: the fewest any view kept, taken first in the cached order (a random order, so a
uniform sample of each view's survivors). With a full-size crop (`global_scale` (1, 1)) every
cached token survives.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from vitkd.cache.crops import crop_side, place_crop
from vitkd.cache.errors import CacheError
from vitkd.cache.geometry import crop_pixels, dihedral, track_tokens
from vitkd.cache.manifest import CacheManifest
from vitkd.data.augment.geometry import CropBox, crop_resize, sample_box
from vitkd.data.augment.macenko import estimate_stain_matrix
from vitkd.data.augment.pipeline import CropAugmenter
from vitkd.data.collate import MaskConfig, MultiCropCollate, mask_index


def _chw(crops: list[np.ndarray], size: int) -> torch.Tensor:
    if not crops:
        return torch.empty((0, 3, size, size), dtype=torch.uint8)
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


class CachedMultiCropCollate:
    """Samples of `CachedDraws` -> today's multi-crop batch plus `batch["cache"]`.

    Keys, view-major (view 0 of every image, then view 1, ...): `global`, `local`, `teacher`
    (uint8 crops; `teacher` is the teacher's view of each global crop, for teachers that run
    live), `masks`, `mask_index`, `n_images`, and `cache`: `{key: {"cls": (n_g*B, D) fp16,
    "patches": (n_g*B, P, D) fp16, "index": (n_g*B, P) int64 flat positions on "grid",
    "grid": (h, w) the teacher grid of the view}}`.

    Args:
        manifest: the cache's header.
        keys: the teachers whose targets are read (the first one anchors the crops).
        global_size, local_size, n_global, n_local, global_scale, local_scale, augment,
            teacher_view: as `CropConfig`.
        masking: iBOT masks, as `MultiCropCollate`.
        flip: mirror views at random.
        rotate: turn views by random quarter turns.
    """

    def __init__(
        self,
        manifest: CacheManifest,
        keys: list[str],
        masking: MaskConfig,
        global_size: int,
        local_size: int,
        n_global: int = 2,
        n_local: int = 8,
        global_scale: tuple[float, float] = (0.32, 1.0),
        local_scale: tuple[float, float] = (0.05, 0.32),
        augment: str = "pathology",
        teacher_view: str = "light",
        flip: bool = True,
        rotate: bool = True,
    ) -> None:
        self.keys = list(keys)
        self.teachers = {k: manifest.teacher(k) for k in self.keys}
        self.size = int(manifest.image["size"])
        self.unit = math.lcm(*(int(t["patch_size"]) for t in self.teachers.values()))
        if self.size % self.unit:
            raise CacheError(
                f"cached images of {self.size} px do not tile into cells of {self.unit} px (the "
                "lcm of the teachers' patch sizes): the crops could not stay on every grid"
            )
        self.cells = self.size // self.unit
        self.masks = MultiCropCollate(masking, global_size)
        self.global_size, self.local_size = global_size, local_size
        self.n_global, self.n_local = n_global, n_local
        self.global_scale, self.local_scale = tuple(global_scale), tuple(local_scale)
        self.student_aug = CropAugmenter(augment)
        self.teacher_view = teacher_view
        self.teacher_aug = CropAugmenter("light") if teacher_view == "light" else None
        self.mpp_jitter = self.student_aug.config.scanner.mpp_jitter
        self.flip, self.rotate = flip, rotate

    def _anchor(self, sample: dict, rng: np.random.Generator) -> tuple[int, int] | None:
        key = self.keys[0]
        index = sample["targets"][key].index
        if len(index) == 0:
            return None
        grid, patch = self.teachers[key]["grid"], int(self.teachers[key]["patch_size"])
        row, col = divmod(int(index[rng.integers(len(index))]), grid[1])
        return row * patch // self.unit, col * patch // self.unit

    def _sample(self, sample: dict, side: int) -> dict[str, Any]:
        """Crops of one tile and its targets in each global view."""
        image = sample["image"]
        seq = np.random.SeedSequence(sample["seed"])
        geo, student_rng, teacher_rng = (np.random.default_rng(s) for s in seq.spawn(3))
        stains = (
            estimate_stain_matrix(image[::2, ::2]) if self.student_aug.needs_stain_matrix else None
        )
        globals_, teachers, views = [], [], []
        for v in range(self.n_global):
            crop = place_crop(
                self.cells, side, self.unit, self._anchor(sample, geo), geo, self.flip, self.rotate
            )
            region = crop_pixels(image, crop)
            resized = crop_resize(
                region, CropBox(0, 0, region.shape[1], region.shape[0], False), self.global_size
            )
            pixels = np.ascontiguousarray(dihedral(resized, crop.flip, crop.turns))
            name = "global1" if v % 2 == 0 else "global2"
            student = self.student_aug(pixels, student_rng, name, stains)
            globals_.append(student)
            if self.teacher_view == "same":
                teachers.append(student)
            elif self.teacher_aug is not None:
                teachers.append(self.teacher_aug(pixels, teacher_rng, name))
            else:
                teachers.append(pixels)
            tracked = {}
            for key, entry in self.teachers.items():
                t = sample["targets"][key]
                keep, new, grid = track_tokens(
                    t.index, tuple(entry["grid"]), int(entry["patch_size"]), crop
                )
                tracked[key] = (t.patches[keep], new, grid)
            views.append(tracked)
        locals_ = []
        for _ in range(self.n_local):
            box = sample_box(
                self.size, self.size, self.local_scale, geo, mpp_jitter=self.mpp_jitter
            )
            crop = crop_resize(image, box, self.local_size)
            locals_.append(self.student_aug(crop, student_rng, "local", stains))
        return {"global": globals_, "teacher": teachers, "local": locals_, "views": views}

    def __call__(self, samples: list[dict]) -> dict[str, Any]:
        seed = sum(s["seed"] for s in samples) % 2**63
        batch_rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCAC4E]))
        side = crop_side(self.cells, self.global_scale, batch_rng)
        cut = [self._sample(s, side) for s in samples]
        n = len(samples)
        # view-major: view 0 of every image, then view 1, ...
        batch: dict[str, Any] = {
            "global": _chw(
                [c["global"][v] for v in range(self.n_global) for c in cut], self.global_size
            ),
            "local": _chw(
                [c["local"][v] for v in range(self.n_local) for c in cut], self.local_size
            ),
            "teacher": _chw(
                [c["teacher"][v] for v in range(self.n_global) for c in cut], self.global_size
            ),
        }
        batch["masks"] = self.masks.masks(self.n_global * n, seed)
        batch["mask_index"] = mask_index(batch["masks"])
        batch["n_images"] = n
        batch["cache"] = {}
        for key in self.keys:
            rows = [c["views"][v][key] for v in range(self.n_global) for c in cut]
            keep = min(len(r[1]) for r in rows)
            cls = np.stack([s["targets"][key].cls for s in samples])
            batch["cache"][key] = {
                "cls": torch.from_numpy(np.tile(cls, (self.n_global, 1))),
                "patches": torch.from_numpy(np.stack([r[0][:keep] for r in rows])),
                "index": torch.from_numpy(np.stack([r[1][:keep] for r in rows]).astype(np.int64)),
                "grid": rows[0][2],
            }
        return batch
