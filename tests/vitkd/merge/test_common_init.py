"""Branches start from one initialisation: `seed` fixes it, `--save_init` writes it, and an export
(the init, or a previous stage's student) loads as `model.student.weights` or as the teacher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vitkd.distill.config import StudentConfig, TeacherConfig
from vitkd.distill.initialisation import save_initialisation
from vitkd.distill.module import DistillationModule
from vitkd.models import WeightsMismatchError, load_exported
from vitkd.train import main

ROOT = Path(__file__).resolve().parents[3]
ARCH = "vit_small_patch14_reg4_dinov2"
TEACHER = {"depth": 1, "embed_dim": 48, "num_heads": 2, "img_size": 56}
STUDENT = {"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": 56}


def _module(
    seed: int, teacher: TeacherConfig | None = None, **student: object
) -> DistillationModule:
    return DistillationModule(
        teacher=teacher or TeacherConfig(name=ARCH, weights="random", kwargs=TEACHER),
        student=StudentConfig(name=ARCH, kwargs=STUDENT, **student),
        targets="features",
        seed=seed,
    )


def _trainable(module: DistillationModule) -> dict[str, torch.Tensor]:
    """Student and objective (adaptor) weights: everything the optimiser starts from."""
    state = module.state_dict()
    return {k: v for k, v in state.items() if k.startswith(("student.", "objective."))}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_seed_alone_fixes_the_start_and_the_saved_init_reproduces_it(tmp_path: Path) -> None:
    torch.manual_seed(123)  # the global stream must not matter
    first = _module(0)
    torch.manual_seed(456)
    assert _same(_trainable(first), _trainable(_module(0)))
    assert not _same(_trainable(first), _trainable(_module(1)))
    init = save_initialisation(first, tmp_path / "init")
    block = json.loads((init / "config.json").read_text())["vitkd"]
    assert block["source"] == "init" and block["seed"] == 0
    saved = load_exported(init).model.state_dict()
    assert _same(saved, first.student.model.state_dict())
    # a branch started from the export is the same module as one started from the seed
    assert _same(_trainable(_module(0, weights=str(init))), _trainable(first))


def test_an_export_is_a_teacher_when_its_spec_is_given(tmp_path: Path) -> None:
    stage = save_initialisation(_module(0), tmp_path / "stage1")
    spec = json.loads((stage / "config.json").read_text())["vitkd"]["spec"]
    teacher = TeacherConfig(name=spec["arch"], weights=str(stage), kwargs=spec["kwargs"])
    small = {"depth": 1, "embed_dim": 16, "num_heads": 2, "img_size": 56}
    module = DistillationModule(
        teacher=teacher, student=StudentConfig(name=ARCH, kwargs=small), targets="features"
    )
    assert _same(module.teacher.model.state_dict(), load_exported(stage).model.state_dict())
    # another normalisation would load the same tensors and silently see other pixels
    wrong = TeacherConfig(
        name=spec["arch"], weights=str(stage), kwargs={**spec["kwargs"], "mean": [0.5] * 3}
    )
    with pytest.raises(WeightsMismatchError, match=r"vitkd export of .*configure name"):
        DistillationModule(teacher=wrong, student=StudentConfig(name=ARCH, kwargs=small))


def test_train_cli_save_init_is_recorded_in_the_export(tmp_path: Path) -> None:
    init, run = tmp_path / "init", tmp_path / "runs"
    main(
        [
            "--config",
            str(ROOT / "configs" / "demo.yaml"),
            "--model.teacher.weights=random",
            "--model.teacher.kwargs",
            json.dumps(TEACHER),
            "--model.student.kwargs",
            json.dumps(STUDENT),
            "--data.source.tile_size=56",
            "--data.source.holdout_max_tiles=16",
            "--data.crops.global_size=56",
            "--data.crops.local_size=28",
            "--data.crops.n_local=2",
            "--data.batch_size=4",
            "--data.samples_per_epoch=16",
            "--data.num_workers=0",
            "--trainer.max_steps=2",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={run}",
            f"--save_init={init}",
        ]
    )
    [export] = [p.parent for p in run.rglob("export/config.json")]
    block = json.loads((export / "config.json").read_text())["vitkd"]
    assert block["student_init"] == str(init.resolve()) and block["seed"] == 0
    assert _same(load_exported(init).model.state_dict(), _module(0).student.model.state_dict())
