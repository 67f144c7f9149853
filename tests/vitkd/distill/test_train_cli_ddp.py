"""`python -m vitkd.train` on 2 CPU processes (DDP, gloo): the run ends and writes one summary and
one export, equal to the EMA shadow of the last checkpoint (RunSummary's collectives match)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from test_train_cli import ROOT, TINY

from vitkd.models import load_exported

# a hang (a collective only some ranks make) must fail the test, not block CI
TIMEOUT_S = 240


def _run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        # 2 processes on few cores: one thread each avoids oversubscription
        "OMP_NUM_THREADS": "1",
    }
    # own session: on a timeout the whole group (the rank Lightning launched too) is killed
    proc = subprocess.Popen(
        [sys.executable, "-m", "vitkd.train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"2-process run hung for {TIMEOUT_S} s:\n{out[-6000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out)


def test_two_process_ddp_cli_run_writes_one_summary_and_the_ema_export(tmp_path: Path) -> None:
    run = tmp_path / "runs"
    result = _run_cli(
        [
            "--config",
            str(ROOT / "configs" / "demo.yaml"),
            *TINY,
            "--trainer.accelerator=cpu",
            "--trainer.devices=2",
            "--trainer.strategy=ddp",
            "--trainer.max_steps=4",
            f"--trainer.default_root_dir={run}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:]
    [summary_path] = run.rglob("summary.json")
    run_dir = summary_path.parent
    summary = json.loads(summary_path.read_text())
    assert summary["steps"] == 4
    assert "cls" in summary["fidelity_before"]
    assert {"ema", "student"} <= set(summary["fidelity_after"])
    assert "cls" in summary["fidelity_after"]["ema"]
    # written once, into the one run folder: the EMA student and the demo's random teacher
    assert sorted(run.rglob("model.safetensors")) == [
        run_dir / "export" / "model.safetensors",
        run_dir / "teacher" / "model.safetensors",
    ]
    exported = load_file(run_dir / "export" / "model.safetensors")
    load_exported(run_dir / "export")  # strict load
    [last] = run.rglob("last.ckpt")
    state = torch.load(last, weights_only=True)["state_dict"]
    assert exported.keys() == {k[len("ema.model.") :] for k in state if k.startswith("ema.model.")}
    for key, value in exported.items():
        torch.testing.assert_close(value, state[f"ema.model.{key}"], rtol=0, atol=0, msg=key)
