"""Typed configuration blocks of the distillation module (each one a YAML section)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

from vitkd.schedules import linear_warmup, ramp

C = TypeVar("C")


def as_config(cls: type[C], value: C | dict[str, Any] | None) -> C:
    """A config dataclass from an instance, a dict (e.g. checkpoint hyper-parameters) or None.

    Always a new object, deep-copied: the blocks are frozen, but their dicts and lists are not,
    and a shared default instance or a caller's dict must not change when one module's copy does.
    """
    if value is None:
        return cls()
    if isinstance(value, cls):
        return copy.deepcopy(value)
    if isinstance(value, dict):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(
                f"unknown key(s) {unknown} for {cls.__name__}; valid keys: {sorted(known)}"
            )
        return cls(**copy.deepcopy(value))
    raise TypeError(f"expected {cls.__name__} or dict, got {type(value).__name__}")


@dataclass(frozen=True)
class TeacherConfig:
    """The frozen teacher.

    Args:
        name: preset (`h-optimus-0`) or any timm architecture name.
        weights: local weights file or folder, `builtin:demo-teacher` (the small teacher shipped
            with vitkd), or `random` (random init with a fixed seed, for tests; the run log says
            so). Required: a teacher without weights is an error.
        kwargs: extra timm constructor arguments (e.g. `depth: 2` for a small test teacher).
        heads: local file with teacher-side DINO/iBOT head weights, for `targets: prototypes`.
        dtype: `auto` (bf16 on CUDA, fp32 on CPU), `bf16`, `fp16` or `fp32`.
        key: the teacher's label in a `model.teachers` list: loss names (`train/<key>/...`), the
            feature cache and the exported adaptors use it. `None`: the name, with `_2`, `_3`
            appended when names repeat. Letters, digits, `_` and `-` only.
        cls_weight: multiplies this teacher's CLS terms (`feature_cls`, `feature_local`,
            `relation`); GPFM weighs UNI / Phikon / CONCH 1.0 / 0.5 / 1.0.
        patch_weight: multiplies this teacher's `feature_patch` term (GPFM: 0.25 / 0.125 / 0.1).

    The teacher's normalisation is its own: timm's mean/std for `name`, or `kwargs: {mean: [...],
    std: [...]}`. Two teachers never share one.
    """

    name: str = "h-optimus-0"
    weights: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    heads: str | None = None
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    key: str | None = None
    cls_weight: float = 1.0
    patch_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.key is not None and not _KEY.fullmatch(self.key):
            raise ValueError(
                f"model.teacher key={self.key!r}: use letters, digits, '_' and '-' only "
                "(it names loss columns, cache entries and exported adaptors)"
            )
        for name in ("cls_weight", "patch_weight"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"model.teacher {name}={getattr(self, name)} for {self.key or self.name!r}: "
                    "weights must be >= 0"
                )


_KEY = re.compile(r"[A-Za-z0-9_-]+")


def teacher_keys(teachers: list[TeacherConfig]) -> list[str]:
    """Unique labels of `teachers`: each `key`, else its name made safe, `_2`... on repeats."""
    keys: list[str] = []
    for cfg in teachers:
        key = cfg.key or re.sub(r"[^A-Za-z0-9_-]", "_", cfg.name)
        if cfg.key is None and key in keys:
            n = 2
            while f"{key}_{n}" in keys:
                n += 1
            key = f"{key}_{n}"
        if key in keys:
            raise ValueError(
                f"model.teachers: key {key!r} is used twice; give each teacher its own `key`"
            )
        keys.append(key)
    return keys


@dataclass(frozen=True)
class BalanceConfig:
    """How several teachers are balanced (each optional; `model.teachers`).

    Args:
        standardize: `none`, or `phis`: PHI-S (Ranzinger et al. 2024,
            https://arxiv.org/abs/2410.01680) maps each teacher's CLS and patch tokens to an
            isotropic distribution, (H U^T (x - mu)) / sqrt(mean eigenvalue), with U the
            eigenvectors of the covariance and H a normalised Hadamard matrix. Fitted on
            `standardize_samples` teacher outputs before training and saved in the run.
        standardize_samples: images whose teacher outputs fit the standardisation.
        teacher_drop: probability that a teacher's loss is skipped in a step (UNIC,
            Sariyildiz et al. 2024, https://arxiv.org/abs/2408.05088, here with a fixed
            probability); the same draw on every rank, and at least one teacher stays.
    """

    standardize: Literal["none", "phis"] = "none"
    standardize_samples: int = 1024
    teacher_drop: float = 0.0

    def __post_init__(self) -> None:
        if self.standardize not in ("none", "phis"):
            raise ValueError(
                f"model.balance.standardize={self.standardize!r}: choose 'none' or 'phis'"
            )
        if not 0.0 <= self.teacher_drop < 1.0:
            raise ValueError(
                f"model.balance.teacher_drop={self.teacher_drop}: a probability in [0, 1)"
            )
        if self.standardize_samples < 2:
            raise ValueError(
                f"model.balance.standardize_samples={self.standardize_samples}: need >= 2"
            )


@dataclass(frozen=True)
class StudentConfig:
    """The trained student.

    Args:
        name: preset (`h0-mini`) or any timm architecture name.
        weights: local weights (or `builtin:<name>`) to start from: continued pretraining, a
            previous stage's export; `None` is timm's random init.
        kwargs: extra timm constructor arguments (e.g. `drop_path_rate`).
        grad_checkpointing: recompute activations in the backward pass to save memory.
        key: the student's label in a `model.students` family: its loss columns
            (`train/<key>|feature_cls`) and its export folder (`export_<key>/`); `None`:
            `student`, `student2`, ... in list order. Letters, digits, `_` and `-` only.
    """

    name: str = "h0-mini"
    weights: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    grad_checkpointing: bool = False
    key: str | None = None

    def __post_init__(self) -> None:
        if self.key is not None and not _KEY.fullmatch(self.key):
            raise ValueError(
                f"model.student key={self.key!r}: use letters, digits, '_' and '-' only "
                "(it names loss columns and the export folder)"
            )


def student_keys(students: list[StudentConfig]) -> list[str]:
    """Unique labels of a family: each `key`, else `student`, `student2`, ... by position."""
    keys = [
        cfg.key or ("student" if i == 0 else f"student{i + 1}") for i, cfg in enumerate(students)
    ]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"model.students: key(s) {repeated} used twice; give each its own `key`")
    return keys


@dataclass(frozen=True)
class Schedule:
    """A value as a pure function of the optimiser step: `start`, then `kind` to `end`.

    `start` holds until `begin` (a fraction of training), the value moves to `end` by `stop`,
    then `end` holds. Either direction works (high -> low anneals, low -> high warms up).

    Args:
        kind: `constant` (always `start`), `linear` or `cosine`.
        start: the value at the start.
        end: the value at `stop` and after (`None`: `start`).
        begin: fraction of training where the change starts.
        stop: fraction of training where it reaches `end`.
    """

    kind: Literal["constant", "linear", "cosine"] = "constant"
    start: float = 1.0
    end: float | None = None
    begin: float = 0.0
    stop: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "linear", "cosine"):
            raise ValueError(
                f"schedule kind={self.kind!r}: choose 'constant', 'linear' or 'cosine'"
            )
        if not 0.0 <= self.begin <= self.stop <= 1.0:
            raise ValueError(
                f"schedule begin={self.begin}, stop={self.stop}: need 0 <= begin <= stop <= 1 "
                "(fractions of training)"
            )

    def at(self, step: int, total: int) -> float:
        """The value at optimiser step `step` of `total`."""
        end = self.start if self.end is None else self.end
        return ramp(step, total, self.kind, self.start, end, self.begin, self.stop)

    def values(self) -> tuple[float, float]:
        """(start, end): the two values the schedule moves between."""
        return self.start, self.start if self.end is None else self.end


def as_schedule(value: Schedule | dict[str, Any] | None, key: str) -> Schedule | None:
    """A `Schedule` from a config value (a dict in YAML or checkpoint hyper-parameters)."""
    if value is None or isinstance(value, Schedule):
        return value
    if isinstance(value, dict):
        try:
            return as_config(Schedule, value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{key}: {err}") from None
    raise TypeError(f"{key}: expected a schedule mapping (kind, start, end, ...), got {value!r}")


@dataclass(frozen=True)
class LossConfig:
    """Loss terms and their weights. A weight of 0 switches a term off.

    Args:
        dino: DINO CLS loss on prototypes (`targets: prototypes`).
        ibot: iBOT masked-patch loss on prototypes (`targets: prototypes`).
        koleo: KoLeo spreading term on the student's pre-head CLS of each global crop.
        feature_cls: cosine + smooth-L1 regression of the teacher CLS (`targets: features`).
        feature_patch: the same on patch tokens, teacher grid resized to the student's.
        feature_local: student local-crop CLS regressed to both teacher global CLS tokens.
        relation: batch similarity-matrix matching of student and teacher CLS.
        centering: teacher target normalisation for prototypes: `sinkhorn` or `softmax`.
        student_temp: student softmax temperature.
        teacher_temp: final teacher temperature.
        warmup_teacher_temp: initial teacher temperature.
        warmup_teacher_temp_fraction: fraction of training over which it rises linearly.
        teacher_temp_schedule: a `Schedule` of the teacher temperature; when given it replaces
            `teacher_temp`, `warmup_teacher_temp` and `warmup_teacher_temp_fraction`.
        student_temp_schedule: a `Schedule` of the student temperature; when given it replaces
            `student_temp` (head fitting before training keeps `student_temp`).
    """

    dino: float = 1.0
    ibot: float = 1.0
    koleo: float = 0.1
    feature_cls: float = 1.0
    feature_patch: float = 1.0
    feature_local: float = 0.5
    relation: float = 0.0
    centering: Literal["sinkhorn", "softmax"] = "sinkhorn"
    student_temp: float = 0.1
    teacher_temp: float = 0.07
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_fraction: float = 0.3
    teacher_temp_schedule: Schedule | None = None
    student_temp_schedule: Schedule | None = None

    def __post_init__(self) -> None:
        # YAML and checkpoint hyper-parameters give the schedules as dicts
        for key in ("teacher_temp_schedule", "student_temp_schedule"):
            schedule = as_schedule(getattr(self, key), f"model.losses.{key}")
            if schedule is not None and min(schedule.values()) <= 0:
                raise ValueError(
                    f"model.losses.{key}: temperatures must be > 0, got {schedule.values()}"
                )
            object.__setattr__(self, key, schedule)

    def teacher_temp_at(self, step: int, total: int) -> float:
        """Teacher temperature at `step`: the schedule, else the legacy linear warm-up."""
        if self.teacher_temp_schedule is not None:
            return self.teacher_temp_schedule.at(step, total)
        return linear_warmup(
            step,
            round(self.warmup_teacher_temp_fraction * total),
            self.warmup_teacher_temp,
            self.teacher_temp,
        )

    def student_temp_at(self, step: int, total: int) -> float:
        """Student temperature at `step`: the schedule, else the constant `student_temp`."""
        if self.student_temp_schedule is not None:
            return self.student_temp_schedule.at(step, total)
        return self.student_temp

    def teacher_temp_settled_fraction(self) -> float:
        """Fraction of training after which the teacher temperature no longer changes."""
        schedule = self.teacher_temp_schedule
        if schedule is None:
            return self.warmup_teacher_temp_fraction
        return 0.0 if schedule.kind == "constant" else schedule.stop


@dataclass(frozen=True)
class HeadConfig:
    """Prototype heads (`targets: prototypes`) and feature adaptors (`targets: features`).

    Args:
        prototypes: number K of DINO prototypes.
        ibot_prototypes: number of iBOT prototypes.
        hidden_dim: MLP hidden width of the DINO/iBOT heads.
        bottleneck_dim: width before the weight-normalised prototype layer.
        adaptor: feature adaptors: `mlp` (Linear-GELU-Linear, RADIO-style) or `linear` (one
            linear map, which forces the student backbone itself to encode the teacher linearly).
        adaptor_hidden_dim: hidden width of the MLP adaptors (`None`: the teacher's width).
        fit_steps: head-fitting steps on the frozen teacher when no head weights are given.
        fit_lr: learning rate of the head-fitting stage.
        freeze_last_layer_fraction: fraction of training (DINOv2: the first epoch) during which
            the student heads' last layers do not move.
    """

    prototypes: int = 65536
    ibot_prototypes: int = 65536
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    adaptor: Literal["mlp", "linear"] = "mlp"
    adaptor_hidden_dim: int | None = None
    fit_steps: int = 1000
    fit_lr: float = 1e-3
    freeze_last_layer_fraction: float = 0.01


@dataclass(frozen=True)
class OptimConfig:
    """AdamW, its schedules (pure functions of the step) and the student EMA.

    Args:
        base_lr: learning rate at a global batch of 1024 (scaled by sqrt(batch / 1024)).
        min_lr: final learning rate of the cosine decay.
        warmup_fraction: fraction of training with linear learning-rate warm-up.
        weight_decay: initial weight decay (cosine to `weight_decay_end`).
        weight_decay_end: final weight decay.
        betas: AdamW betas.
        layer_decay: layer-wise learning-rate decay.
        patch_embed_lr_mult: learning-rate multiplier of the patch embedding.
        clip_grad: gradient-norm clipping (0 switches it off).
        ema_momentum: initial EMA momentum of the student shadow (cosine to `ema_momentum_end`).
        ema_momentum_end: final EMA momentum.
        fused: use the fused AdamW kernel (CUDA only; `auto` picks it on CUDA).
    """

    base_lr: float = 2e-3
    min_lr: float = 1e-6
    warmup_fraction: float = 0.1
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    betas: tuple[float, float] = (0.9, 0.999)
    layer_decay: float = 0.9
    patch_embed_lr_mult: float = 0.2
    clip_grad: float = 3.0
    ema_momentum: float = 0.992
    ema_momentum_end: float = 1.0
    fused: Literal["auto", "on", "off"] = "auto"
