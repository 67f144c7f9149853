"""Teacher-student fidelity on held-out tiles: CKA, ridge R^2, kNN agreement, probe retention."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evaluation.embeddings_io import load_array, load_coords
from evaluation.probes import LinearProbeConfig, ProbeData, headline, run_probes
from vitkd.metrics import knn_agreement, linear_cka, pc_r2, ridge_r2


class FidelityInputError(ValueError):
    """Student and teacher embeddings cannot be paired; the message says why."""


def fidelity_metrics(
    student: np.ndarray, teacher: np.ndarray, k: int = 10, alpha: float = 1.0, seed: int = 0
) -> dict[str, float]:
    """pc_r2 (every teacher direction counts; see `vitkd.metrics.pc_r2`), linear_cka, ridge_r2
    (student -> teacher, half/half) and kNN agreement, plain and on centred features."""
    if len(student) != len(teacher):
        raise FidelityInputError(
            f"student has {len(student)} rows, teacher {len(teacher)}; embed the same tiles"
        )
    k = min(k, len(student) - 1)
    return {
        "pc_r2": pc_r2(student, teacher, seed=seed),
        "linear_cka": linear_cka(student, teacher),
        "ridge_r2": ridge_r2(student, teacher, alpha=alpha, seed=seed),
        "knn_agreement": knn_agreement(student, teacher, k=k),
        "knn_agreement_centred": knn_agreement(student, teacher, k=k, centred=True),
        "n_tiles": len(student),
        "student_dim": int(student.shape[1]),
        "teacher_dim": int(teacher.shape[1]),
    }


def _files(inputs: Sequence[str | Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in map(Path, inputs):
        found = (
            sorted(p for p in item.iterdir() if p.suffix in (".h5", ".npy", ".pt"))
            if item.is_dir()
            else [item]
        )
        for p in found:
            if not p.is_file():
                raise FidelityInputError(f"{p}: no such embedding file")
            out[p.stem] = p
    return out


def load_paired(
    student: Sequence[str | Path], teacher: Sequence[str | Path]
) -> tuple[np.ndarray, np.ndarray]:
    """Stack student/teacher embeddings of the same tiles, matched by file stem and (for .h5) coords."""
    s_files, t_files = _files(student), _files(teacher)
    if set(s_files) != set(t_files):
        raise FidelityInputError(
            f"student and teacher files differ: only student {sorted(set(s_files) - set(t_files))}, only teacher {sorted(set(t_files) - set(s_files))}"
        )
    xs, xt = [], []
    for name in sorted(s_files):
        a, b = load_array(s_files[name]), load_array(t_files[name])
        ca, cb = load_coords(s_files[name]), load_coords(t_files[name])
        if ca is not None and cb is not None:
            ia, ib = np.lexsort((ca[:, 1], ca[:, 0])), np.lexsort((cb[:, 1], cb[:, 0]))
            if not np.array_equal(ca[ia], cb[ib]):
                raise FidelityInputError(
                    f"{name}: student and teacher were embedded on different tile coords"
                )
            a, b = a[ia], b[ib]
        elif len(a) != len(b):
            raise FidelityInputError(f"{name}: {len(a)} student rows vs {len(b)} teacher rows")
        xs.append(a)
        xt.append(b)
    return np.concatenate(xs), np.concatenate(xt)


def probe_retention(
    student: ProbeData,
    teacher: ProbeData,
    probes: Sequence[str] = ("logistic", "knn"),
    linear_config: LinearProbeConfig | None = None,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Per probe: student and teacher balanced accuracy and retention = student / teacher."""
    s = run_probes(student, probes, linear_config, progress=progress)
    t = run_probes(teacher, probes, linear_config, progress=progress)
    out = {}
    for name in probes:
        a, b = headline(s[name]), headline(t[name])
        out[name] = {"student": a, "teacher": b, "retention": a / b if b > 0 else float("nan")}
    return out
