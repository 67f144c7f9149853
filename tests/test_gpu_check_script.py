"""`scripts/gpu_check.sh` end to end on the CPU with tiny models (slow: about 1.5 minutes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_script_runs_every_stage_and_writes_its_results(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "OUT": str(tmp_path),
        "BENCH_CONFIG": "configs/demo.yaml",
        "BATCH": "2",
        "STEPS": "2",
        "OPTION_STEPS": "1",
        "OPTIONS": "baseline,attention=eager",
        "EMBED_ARGS": "--large-size 2048 --pure-batches 1 --batch-size 8 --workers 1",
    }
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    for stage in ("wheels", "pytest_gpu", "bench_train", "bench_embed"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {stage} "))
        assert "failed" not in row and "missing" not in row, row
    results = json.loads((tmp_path / "bench_train.json").read_text())
    assert [r["option"] for r in results["options"]] == ["baseline", "attention=eager"]
    assert all(r["full"] > 0 and r["pure"] > 0 for r in results["options"])
    assert "ratio=" in (tmp_path / "bench_embed.txt").read_text()
    assert "== summary" in (tmp_path / "gpu_check.log").read_text()
