"""Tiered families (DINOv3): several students distilled from one teacher forward per step."""

from __future__ import annotations

import copy

from torch import nn

from vitkd.distill.config import StudentConfig, student_keys
from vitkd.models import Backbone

# separates a family member's key from its loss term: `<member>|feature_cls`
MEMBER_SEP = "|"


class FamilyMember(nn.Module):
    """One further student of a family: its backbone, its adaptors (one objective per teacher)
    and its EMA shadow (its export). Its parameters form their own optimiser groups and are
    clipped on their own, so members never scale each other's updates."""

    def __init__(self, student: Backbone, objectives: list[nn.Module]) -> None:
        super().__init__()
        self.student = student
        self.objectives = nn.ModuleList(objectives)
        self.ema = copy.deepcopy(student).requires_grad_(False)


def resolve_students(
    student: StudentConfig, students: list[StudentConfig | dict] | None
) -> tuple[list[StudentConfig], list[str]]:
    """The student configs (the first is the module's `student`) and their keys.

    `model.students` replaces `model.student` and must not be combined with a non-default one.
    """
    from vitkd.distill.config import as_config

    if not students:
        return [student], student_keys([student])
    if student != StudentConfig():
        raise ValueError(
            "model.student and model.students are both set: put every student in "
            "model.students (a list of student blocks) and remove model.student"
        )
    configs = []
    for i, value in enumerate(students):
        try:
            configs.append(as_config(StudentConfig, value))
        except (TypeError, ValueError) as err:
            raise ValueError(f"model.students[{i}]: {err}") from None
    return configs, student_keys(configs)


def split_member(name: str) -> tuple[str | None, str]:
    """(`member key` or None, term) of a loss-term name."""
    if MEMBER_SEP in name:
        key, term = name.split(MEMBER_SEP, 1)
        return key, term
    return None, name
