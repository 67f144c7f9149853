"""DINOv2 multi-crop with stain/scanner augmentation and a separate teacher view of each crop."""

from __future__ import annotations

import os

import numpy as np
import torch

from vitkd.data.augment.geometry import CropBox, crop_resize, sample_box
from vitkd.data.augment.macenko import estimate_stain_matrix
from vitkd.data.augment.pipeline import CropAugmenter
from vitkd.data.augment.presets import AugmentConfig, AugmentConfigError

TEACHER_VIEWS = ("same", "light", "clean")


def _to_tensor(crops: list[np.ndarray], size: int) -> torch.Tensor:
    if not crops:
        return torch.empty((0, 3, size, size), dtype=torch.uint8)
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


class MultiCrop:
    """DINOv2 multi-crop of one tile: student global and local crops, and the teacher's globals.

    Geometry is the reference's: RandomResizedCrop (torchvision's box sampler; bicubic when
    enlarging, area-averaged when shrinking 2x or more, where PIL's bicubic antialiases) and a flip,
    plus the MPP jitter of ``augment.scanner.mpp_jitter``. Each crop is then augmented at its final
    size with ``augment`` (per-view blur/solarize chances of the ``dinov2`` preset apply).

    The teacher sees the *same geometry* as the student's global crops (so patch-level targets
    stay aligned) with a photometric treatment chosen by ``teacher_view``:

    - ``"same"``: exactly the student's augmented global crops (DINOv2 behaviour).
    - ``"light"`` (default): the crop with only the ``light`` preset (tiny brightness, contrast
      and saturation changes). The student must map any stain/scanner condition to the
      teacher's near-clean representation, the mechanism behind H0-mini's robustness gain over
      its teacher, while the teacher still sees the mild photometric variation it was trained on.
    - ``"clean"``: the crop with no photometric change at all.

    Determinism: with ``seed`` set, the same input gives the same output. ``reseed(seed)`` resets
    the stream (call it per sample or in a DataLoader ``worker_init_fn``). If a DataLoader worker
    uses the transform without reseeding, the stream is re-derived from ``seed`` (or fresh
    entropy) and the worker's torch seed, so workers never replay each other's augmentations.
    For one seed, the crop geometry does not depend on ``augment`` (except its MPP jitter) or
    ``teacher_view``.

    Args:
        global_size: side of the global crops (224 for patch 14).
        local_size: side of the local crops (98 for patch 14).
        n_global: number of global crops (the student's and the teacher's).
        n_local: number of local crops (student only); 0 gives an empty (0, 3, L, L) tensor.
        global_scale: RandomResizedCrop area-fraction range of the global crops.
        local_scale: the same for the local crops.
        augment: preset name (``none``, ``light``, ``dinov2``, ``pathology``) or `AugmentConfig`.
        teacher_view: ``"same"``, ``"light"`` or ``"clean"``.
        seed: seed of the random stream; None draws fresh entropy.
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
        seed: int | None = None,
    ) -> None:
        if teacher_view not in TEACHER_VIEWS:
            raise AugmentConfigError(f"teacher_view={teacher_view!r} is not one of {TEACHER_VIEWS}")
        if global_size < 1 or local_size < 1:
            raise AugmentConfigError(
                f"global_size={global_size} and local_size={local_size} must be positive"
            )
        if n_global < 1 or n_local < 0:
            raise AugmentConfigError(
                f"n_global={n_global} must be >= 1 and n_local={n_local} must be >= 0"
            )
        for name, scale in (("global_scale", global_scale), ("local_scale", local_scale)):
            if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
                raise AugmentConfigError(f"{name}={scale!r} must satisfy 0 < min <= max <= 1")
        self.global_size = global_size
        self.local_size = local_size
        self.n_global = n_global
        self.n_local = n_local
        self.global_scale = tuple(global_scale)
        self.local_scale = tuple(local_scale)
        self.teacher_view = teacher_view
        self.student_aug = CropAugmenter(augment)
        self.teacher_aug = CropAugmenter("light") if teacher_view == "light" else None
        self.mpp_jitter = self.student_aug.config.scanner.mpp_jitter
        # chance that a student crop gets the photometric preset (a curriculum lowers it)
        self.augment_p = 1.0
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the random stream from ``seed`` (None: fresh entropy)."""
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._pid = os.getpid()

    def _check_process(self) -> None:
        # A forked DataLoader worker inherits the parent's generator state: derive its own.
        if os.getpid() == self._pid:
            return
        info = torch.utils.data.get_worker_info()
        worker_seed = info.seed if info is not None else int(torch.initial_seed())
        # the worker seed as a spawn key, not appended entropy: numpy reads [seed, 0] as the
        # integer `seed`, so a worker seed of 0 would have repeated the parent's stream
        sequence = np.random.SeedSequence(self._seed, spawn_key=(worker_seed,))
        self._rng = np.random.default_rng(sequence)
        self._pid = os.getpid()

    def boxes(self, height: int, width: int, rng: np.random.Generator) -> list[CropBox]:
        """Sample the global then local crop boxes for an image of the given size."""
        out = [
            sample_box(height, width, self.global_scale, rng, mpp_jitter=self.mpp_jitter)
            for _ in range(self.n_global)
        ]
        out += [
            sample_box(height, width, self.local_scale, rng, mpp_jitter=self.mpp_jitter)
            for _ in range(self.n_local)
        ]
        return out

    def __call__(self, image: np.ndarray) -> dict[str, torch.Tensor]:
        """Multi-crop one uint8 RGB image.

        Returns:
            ``global`` uint8 (n_global, 3, G, G) student views, ``local`` uint8
            (n_local, 3, L, L), ``teacher`` uint8 (n_global, 3, G, G); contiguous CHW.
        """
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"MultiCrop expects a uint8 RGB image of shape (H, W, 3), got dtype {image.dtype} "
                f"shape {image.shape}; drop an alpha channel with image[..., :3]"
            )
        self._check_process()
        seq = np.random.SeedSequence(self._rng.integers(2**63))
        geo_rng, student_rng, teacher_rng = (np.random.default_rng(s) for s in seq.spawn(3))
        boxes = self.boxes(image.shape[0], image.shape[1], geo_rng)
        # a fourth stream, drawn only below full strength, so augment_p = 1 changes nothing
        augmented = (
            np.random.default_rng(seq.spawn(1)[0]).random(len(boxes)) < self.augment_p
            if self.augment_p < 1.0
            else np.ones(len(boxes), dtype=bool)
        )
        # One Macenko estimate of the source serves every crop (crops share the tile's stains).
        stains = (
            estimate_stain_matrix(image[::2, ::2]) if self.student_aug.needs_stain_matrix else None
        )
        globals_, teachers, locals_ = [], [], []
        for i, box in enumerate(boxes[: self.n_global]):
            crop = crop_resize(image, box, self.global_size)
            view = "global1" if i % 2 == 0 else "global2"
            student = self.student_aug(crop, student_rng, view, stains) if augmented[i] else crop
            globals_.append(student)
            if self.teacher_view == "same":
                teachers.append(student)
            elif self.teacher_aug is not None:
                teachers.append(self.teacher_aug(crop, teacher_rng, view))
            else:
                teachers.append(crop)
        for i, box in enumerate(boxes[self.n_global :], start=self.n_global):
            crop = crop_resize(image, box, self.local_size)
            locals_.append(
                self.student_aug(crop, student_rng, "local", stains) if augmented[i] else crop
            )
        return {
            "global": _to_tensor(globals_, self.global_size),
            "local": _to_tensor(locals_, self.local_size),
            "teacher": _to_tensor(teachers, self.global_size),
        }
