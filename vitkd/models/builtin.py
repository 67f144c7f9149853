"""Weights references in configs: local paths, `random` (tests only) and `builtin:<name>`."""

from __future__ import annotations

from pathlib import Path

from vitkd.models.weights import weight_files

# the trained demo teacher that ships inside the package (see its PROVENANCE.md)
DEMO_TEACHER = Path(__file__).resolve().parents[1] / "demo_teacher"
BUILTIN = {"demo-teacher": DEMO_TEACHER}
RANDOM = "random"
_PREFIX = "builtin:"


class WeightsNotGivenError(ValueError):
    """A teacher without weights: random teachers are only built when asked for."""


def resolve_weights(value: str | None, key: str) -> str | None:
    """The local path behind a config's weights value; `None` for `random` (or unset).

    Args:
        value: a local file or folder, `builtin:<name>` (one of `BUILTIN`), `random`, or `None`.
        key: the config key, for error messages (e.g. `model.teacher.weights`).
    """
    if value is None or value == RANDOM:
        return None
    if value.startswith(_PREFIX):
        name = value[len(_PREFIX) :]
        if name not in BUILTIN:
            raise ValueError(
                f"{key}={value!r}: no built-in weights {name!r}; have "
                f"{', '.join(_PREFIX + n for n in BUILTIN)}"
            )
        return str(BUILTIN[name])
    return value


def require_teacher_weights(
    value: str | None, name: str, key: str = "model.teacher.weights"
) -> None:
    """Raise `WeightsNotGivenError` when a teacher has no weights and `random` was not asked for."""
    if value is None:
        raise WeightsNotGivenError(
            f"{key} is not set for teacher {name!r}: give the local path of its "
            "weights (a .safetensors/.bin/.pth file or an HF-style folder, e.g. "
            f"--{key} /models/h-optimus-0), `builtin:demo-teacher` for the small "
            "teacher shipped with vitkd, or `random` for a randomly initialised teacher "
            "(tests and demos only)"
        )


def check_model_weights(
    teacher: str | None,
    teacher_name: str,
    student: str | None,
    self_distill: bool,
    teacher_key: str = "model.teacher.weights",
) -> tuple[str | None, str | None]:
    """Local paths of the teacher and student weights (`None`: random / timm init), every file
    checked to exist. Cheap: run it before building anything large.

    Args:
        teacher: `model.teacher.weights` (ignored for self-distillation, which has no teacher).
        teacher_name: `model.teacher.name`, for the error message.
        student: `model.student.weights`.
        self_distill: `model.targets == "self"`.
        teacher_key: the config key of `teacher`, for error messages.
    """
    teacher_path = None
    if not self_distill:
        require_teacher_weights(teacher, teacher_name, teacher_key)
        teacher_path = resolve_weights(teacher, teacher_key)
    student_path = resolve_weights(student, "model.student.weights")
    for path in (teacher_path, student_path):
        if path is not None:
            weight_files(path)
    return teacher_path, student_path


def check_student_weights(value: str | None, key: str) -> str | None:
    """The local path of a student's starting weights (`None`: random init), checked to exist."""
    path = resolve_weights(value, key)
    if path is not None:
        try:
            weight_files(path)
        except FileNotFoundError as err:
            raise type(err)(f"{key}: {err}") from None
    return path
