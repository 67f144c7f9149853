"""Progressive distillation: a chain teacher -> intermediate -> small, one train run per stage.

A plan (YAML) lists the stages in order. Each stage is a `python -m vitkd.train` run of its
config plus its own options; its teacher is the previous stage's export (the first stage keeps
the plan's or its config's teacher). A stage with `finetune: true` instead continues the
previous stage's student (`model.student.weights`) against the previous stage's teacher, and its
export becomes the next stage's teacher: the optional fine-tuning before the next step down.

    teacher: builtin:demo-teacher        # weights of the first stage's teacher (optional)
    stages:
      - name: intermediate
        config: configs/demo.yaml
        args: ["--model.student.kwargs", "{depth: 3, embed_dim: 144, num_heads: 3, img_size: 112}"]
      - name: intermediate-ft            # optional
        config: configs/demo.yaml
        finetune: true
        args: ["--model.optim.base_lr", "0.001"]
      - name: small
        config: configs/demo.yaml
        args: ["--trainer.max_steps", "250"]

Every stage writes OUT/<name>/: `runs/` (the train run folders) and, once trained, `export/`
(copied there whole, then renamed) and `stage.json`. Rerunning the plan resumes where it
stopped: a stage whose `export/` exists is skipped, a finished run whose export was not copied
yet is copied, and an interrupted stage resumes from its newest `checkpoints/last.ckpt`.

    python scripts/progressive.py plan.yaml --out runs/chain
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PLAN_KEYS = {"teacher", "stages"}
STAGE_KEYS = {"name", "config", "args", "finetune", "teacher"}


class PlanError(ValueError):
    """A plan that cannot run: unknown keys, missing configs, a fine-tune stage first."""


def read_plan(path: Path) -> dict:
    """Read and check a plan file (relative config paths: from the plan's folder, else the working folder)."""
    plan = yaml.safe_load(path.read_text()) or {}
    if not isinstance(plan, dict) or set(plan) - PLAN_KEYS or not plan.get("stages"):
        raise PlanError(f"{path}: a plan is a mapping with 'stages' (and optionally 'teacher')")
    names = set()
    for i, stage in enumerate(plan["stages"]):
        unknown = set(stage) - STAGE_KEYS
        if unknown or "name" not in stage or "config" not in stage:
            raise PlanError(
                f"{path}: stage {i} needs 'name' and 'config' (known keys: "
                f"{', '.join(sorted(STAGE_KEYS))}; unknown: {', '.join(sorted(unknown)) or '-'})"
            )
        if stage["name"] in names:
            raise PlanError(f"{path}: two stages are named {stage['name']!r}")
        names.add(stage["name"])
        config = Path(stage["config"]).expanduser()
        if not config.is_absolute() and (path.parent / config).is_file():
            config = path.parent / config  # next to the plan, else from the working folder
        stage["config"] = str(config.resolve())
        if not config.is_file():
            raise PlanError(f"{path}: stage {stage['name']!r}: no config {stage['config']}")
    if plan["stages"][0].get("finetune"):
        raise PlanError(f"{path}: the first stage cannot be a fine-tune (no student before it)")
    return plan


def model_options(role: str, export: Path) -> list[str]:
    """`--model.<role>.{weights,name,kwargs}` that rebuild an export, normalisation included."""
    if not (export / "config.json").is_file():  # a dry run, before the previous stage trained
        return [f"--model.{role}.weights={export}", f"--model.{role}.name/kwargs=<its spec>"]
    spec = json.loads((export / "config.json").read_text())["vitkd"]["spec"]
    kwargs = {**spec["kwargs"], "mean": spec["mean"], "std": spec["std"]}
    return [
        f"--model.{role}.weights={export}",
        f"--model.{role}.name={spec['arch']}",
        f"--model.{role}.kwargs={json.dumps(kwargs)}",
    ]


def newest(folder: Path, pattern: str) -> Path | None:
    """The most recently modified match of `pattern` under `folder`."""
    found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return found[-1] if found else None


def finished_export(runs: Path) -> Path | None:
    """The export of the newest run of a stage that finished (its summary names it)."""
    summary = newest(runs, "**/summary.json")
    if summary is None:
        return None
    export = json.loads(summary.read_text()).get("export")
    return Path(export) if export and (Path(export) / "config.json").is_file() else None


def copy_export(source: Path, dest: Path) -> None:
    """Copy an export folder whole to a hidden sibling, then rename it into place."""
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    os.replace(tmp, dest)


def stage_command(stage: dict, teacher: str | Path | None, student: Path | None, runs: Path):
    """The train command of one stage; `--ckpt_path` when an interrupted run left one."""
    cmd = [sys.executable, "-m", "vitkd.train", "--config", stage["config"]]
    if isinstance(teacher, Path):
        cmd += model_options("teacher", teacher)
    elif teacher is not None:
        cmd.append(f"--model.teacher.weights={teacher}")
    if student is not None:
        cmd += model_options("student", student)
    cmd += [str(a) for a in stage.get("args", [])]
    cmd.append(f"--trainer.default_root_dir={runs}")
    checkpoint = newest(runs, "**/checkpoints/last.ckpt")
    if checkpoint is not None:
        cmd.append(f"--ckpt_path={checkpoint}")
    return cmd


def run_plan(plan: dict, out: Path, dry_run: bool = False) -> list[Path]:
    """Run (or resume) every stage in order; returns the stage exports."""
    out = out.resolve()  # the stages run from the repository root
    teacher: str | Path | None = plan.get("teacher")
    previous: Path | None = None
    previous_teacher = teacher
    exports = []
    for stage in plan["stages"]:
        folder = out / stage["name"]
        export, runs = folder / "export", folder / "runs"
        student = None
        stage_teacher = previous if previous is not None else teacher
        if stage.get("finetune"):
            student, stage_teacher = previous, previous_teacher
        if stage.get("teacher"):
            stage_teacher = _as_teacher(stage["teacher"])
        if (export / "config.json").is_file():
            print(f"[{stage['name']}] done: {export}", flush=True)
        elif (done := finished_export(runs)) is not None and not dry_run:
            print(f"[{stage['name']}] trained; copying {done}", flush=True)
            copy_export(done, export)
        else:
            cmd = stage_command(stage, stage_teacher, student, runs)
            print(f"[{stage['name']}] {' '.join(cmd[1:])}", flush=True)
            if not dry_run:
                folder.mkdir(parents=True, exist_ok=True)
                subprocess.run(cmd, check=True, cwd=ROOT)
                done = finished_export(runs)
                if done is None:
                    raise RuntimeError(f"stage {stage['name']}: the run left no export in {runs}")
                copy_export(done, export)
        if not dry_run:
            record = {"stage": stage, "teacher": str(stage_teacher), "student_init": str(student)}
            (folder / "stage.json").write_text(json.dumps(record, indent=1) + "\n")
        previous_teacher, previous = stage_teacher, export
        exports.append(export)
    return exports


def _as_teacher(value: str) -> str | Path:
    """An export folder as a Path (its spec is passed on), anything else as given."""
    path = Path(value).expanduser()
    return path.resolve() if (path / "config.json").is_file() else value


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the plan."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("plan", type=Path, help="the plan (YAML): teacher and stages")
    p.add_argument("--out", type=Path, required=True, help="folder of the stage folders")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    try:
        plan = read_plan(args.plan)
        if plan.get("teacher"):
            plan["teacher"] = _as_teacher(str(plan["teacher"]))
        exports = run_plan(plan, args.out, args.dry_run)
    except (PlanError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as err:
        print(f"error: a stage failed (exit {err.returncode}); rerun to resume", file=sys.stderr)
        return 1
    print(f"final student: {exports[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
