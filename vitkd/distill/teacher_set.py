"""Several frozen teachers: the resolved list, their weights checks, loss weights and dropping."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from vitkd.distill.config import LossConfig, TeacherConfig, as_config, teacher_keys
from vitkd.models.builtin import check_model_weights

# a teacher's CLS-side terms: weighted by its `cls_weight`; `feature_patch` by `patch_weight`
CLS_TERMS = ("feature_cls", "feature_local", "relation")
_TERM = re.compile(r"^(?:(?P<key>[A-Za-z0-9_-]+)/)?(?P<term>[a-z_]+)(?:@(?P<size>\d+))?$")


@dataclass(frozen=True)
class TeacherEntry:
    """One teacher of the set: its label, config and checked local weights (`None`: random)."""

    key: str
    config: TeacherConfig
    weights_path: str | None
    config_key: str  # e.g. `model.teachers[1]`, for messages


def resolve_teachers(
    teacher: TeacherConfig, teachers: list[TeacherConfig | dict] | None
) -> tuple[list[TeacherConfig], bool]:
    """The teacher configs and whether they came from a `model.teachers` list.

    `model.teacher` alone is today's single teacher; `model.teachers` replaces it and must not
    be combined with a non-default `model.teacher` (one of the two would be ignored silently).
    """
    if not teachers:
        return [teacher], False
    if teacher != TeacherConfig():
        raise ValueError(
            "model.teacher and model.teachers are both set: put every teacher in model.teachers "
            "(a list of teacher blocks) and remove model.teacher"
        )
    configs = []
    for i, value in enumerate(teachers):
        try:
            configs.append(as_config(TeacherConfig, value))
        except (TypeError, ValueError) as err:
            raise ValueError(f"model.teachers[{i}]: {err}") from None
    return configs, True


def check_teachers(
    configs: list[TeacherConfig], listed: bool, student_weights: str | None, self_distill: bool
) -> tuple[list[TeacherEntry], str | None]:
    """Every teacher's weights checked (named by its key) before any model is built, and the
    student's local weights path."""
    keys = teacher_keys(configs)
    entries = []
    student_path = None
    for i, (key, cfg) in enumerate(zip(keys, configs, strict=True)):
        where = f"model.teachers[{i}]" if listed else "model.teacher"
        label = f"{where}.weights" + (f" (teacher {key!r})" if listed else "")
        path, student = check_model_weights(
            cfg.weights, cfg.name, student_weights if i == 0 else None, self_distill, label
        )
        if i == 0:
            student_path = student
        entries.append(TeacherEntry(key, cfg, path, where))
    return entries, student_path


def term_weight(
    name: str,
    losses: LossConfig,
    teachers: dict[str, TeacherConfig],
    sizes: dict[int, float] | None = None,
) -> float:
    """Weight of the loss term `name` = `[<teacher key>/]<term>[@<size>]`.

    The term's weight in `losses`, times the teacher's `cls_weight` or `patch_weight` (the only
    teacher when no key is given), times the Matryoshka weight of the size.
    """
    match = _TERM.match(name)
    if match is None:
        raise KeyError(f"loss term {name!r} is not <key>/<term>@<size>")
    term = match["term"]
    weight = float(getattr(losses, term))
    key = match["key"]
    if key is not None or (term in CLS_TERMS or term == "feature_patch"):
        cfg = teachers[key] if key is not None else next(iter(teachers.values()))
        if term in CLS_TERMS:
            weight *= cfg.cls_weight
        elif term == "feature_patch":
            weight *= cfg.patch_weight
    if match["size"] is not None:
        weight *= (sizes or {})[int(match["size"])]
    return weight


def dropped_teachers(keys: list[str], probability: float, seed: int, step: int) -> set[str]:
    """Teachers whose losses are skipped at `step` (UNIC's teacher dropping, fixed probability).

    A pure function of (seed, step): every rank drops the same teachers and a resumed run the
    same as the original. At least one teacher always stays (the one with the largest draw).
    """
    if probability <= 0 or len(keys) < 2:
        return set()
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    draws = torch.rand(len(keys), generator=generator)
    dropped = {k for k, u in zip(keys, draws.tolist(), strict=True) if u < probability}
    if len(dropped) == len(keys):
        dropped.discard(keys[int(draws.argmax())])
    return dropped
