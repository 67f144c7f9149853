"""Embedding files name the model they came from: architecture and run, not just a folder name."""

from pathlib import Path

import torch
from conftest import TINY_ARCH, TINY_KWARGS

from vitkd.embed.resolve import resolve_model
from vitkd.models import build_backbone, export_backbone


def test_student_and_teacher_of_two_runs_get_distinct_names(tmp_path: Path) -> None:
    """Every vitkd run exports `export/` (student) and `teacher/`: both used to be named by
    their folder only, so two runs' students were both called "export"."""
    torch.manual_seed(0)
    backbone = build_backbone(TINY_ARCH, **TINY_KWARGS)
    names = {}
    for run in ("2026-11-28_10-00-00", "2026-11-29_09-30-00"):
        for folder, role in (("export", "ema"), ("teacher", "random-init teacher")):
            path = export_backbone(backbone, tmp_path / run / folder, extra={"source": role})
            resolved = resolve_model(str(path))
            names[(run, folder)] = resolved.encoder
            assert resolved.arch == TINY_ARCH and resolved.role == role
            assert resolved.origin == str(path.resolve())
    assert len(set(names.values())) == 4
    assert names[("2026-11-28_10-00-00", "export")] == f"{TINY_ARCH} (2026-11-28_10-00-00/export)"
