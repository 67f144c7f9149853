"""`scripts/progressive.py`: a two-stage chain of tiny models, each stage taught by the previous
export; a rerun skips finished stages; fine-tune and resume commands."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vitkd.models import load_exported

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("progressive", ROOT / "scripts" / "progressive.py")
progressive = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(progressive)

TINY = [
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
]


def _kwargs(depth: int, width: int) -> str:
    return json.dumps({"depth": depth, "embed_dim": width, "num_heads": 2, "img_size": 56})


def _plan(tmp_path: Path, stages: list[dict]) -> Path:
    plan = {"teacher": "random", "stages": stages}
    path = tmp_path / "plan.yaml"
    path.write_text(json.dumps(plan))  # JSON is YAML
    return path


def _stage(name: str, width: int | None, **extra: object) -> dict:
    args = [*TINY] if width is None else [*TINY, "--model.student.kwargs", _kwargs(1, width)]
    if name == "a":
        args += ["--model.teacher.kwargs", _kwargs(1, 48)]
    return {"name": name, "config": str(ROOT / "configs" / "demo.yaml"), "args": args, **extra}


def test_each_stage_is_taught_by_the_previous_export_and_reruns_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    plan = _plan(tmp_path, [_stage("a", 32), _stage("b", 16)])
    out = tmp_path / "chain"
    assert progressive.main([str(plan), "--out", str(out)]) == 0
    a, b = out / "a" / "export", out / "b" / "export"
    assert load_exported(b).embed_dim == 16
    [config] = (out / "b" / "runs").rglob("config.yaml")
    teacher = yaml.safe_load(config.read_text())
    assert teacher["model"]["teacher"]["weights"] == str(a)
    assert teacher["model"]["teacher"]["kwargs"]["embed_dim"] == 32
    assert json.loads((out / "b" / "stage.json").read_text())["teacher"] == str(a)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished stage was trained again")

    monkeypatch.setattr(subprocess, "run", never)
    stamp = (b / "model.safetensors").stat().st_mtime_ns
    assert progressive.main([str(plan), "--out", str(out)]) == 0
    assert "[a] done" in capsys.readouterr().out
    assert (b / "model.safetensors").stat().st_mtime_ns == stamp


def test_finetune_continues_the_student_and_resume_passes_the_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "chain"
    first = out / "a" / "export"
    first.mkdir(parents=True)
    from vitkd.models import build_student, export_backbone

    export_backbone(
        build_student("vit_small_patch14_reg4_dinov2", depth=1, embed_dim=32, num_heads=2), first
    )
    checkpoint = out / "ft" / "runs" / "vitkd" / "t0" / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    plan = _plan(tmp_path, [_stage("a", 32), _stage("ft", None, finetune=True), _stage("b", 16)])
    assert progressive.main([str(plan), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ft = next(line for line in lines if line.startswith("[ft]"))
    b = next(line for line in lines if line.startswith("[b]"))
    assert f"--model.student.weights={first}" in ft and "--model.teacher.weights=random" in ft
    assert f"--ckpt_path={checkpoint}" in ft
    assert f"--model.teacher.weights={out / 'ft' / 'export'}" in b


def test_bad_plans_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    plan = _plan(tmp_path, [_stage("a", 32, finetune=True)])
    assert progressive.main([str(plan), "--out", str(tmp_path / "o")]) == 2
    assert "first stage cannot be a fine-tune" in capsys.readouterr().err
    plan = _plan(tmp_path, [{"name": "a", "config": "nope.yaml"}])
    assert progressive.main([str(plan), "--out", str(tmp_path / "o")]) == 2
    assert "no config" in capsys.readouterr().err


def test_shipped_demo_plan_dry_runs(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "progressive.py"),
            str(ROOT / "configs" / "plans" / "progressive_demo.yaml"),
            "--out",
            str(tmp_path),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "[intermediate]" in out and "[small]" in out and "intermediate/export" in out
