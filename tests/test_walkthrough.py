"""`scripts/walkthrough.py`: the README's commands in order on the sample and a generated slide.

Slow (about 2 minutes on 2 loaded cores): a subprocess per command, tiny models.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_walkthrough_runs_every_documented_command(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "walkthrough.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "walkthrough: ok" in run.stdout.splitlines()[-1]
    for step in ("tile_trident", "train", "export", "embed_student", "report", "bad_train_weights"):
        assert (tmp_path / "logs" / f"{step}.log").is_file(), step
    assert (tmp_path / "report" / "index.html").is_file()
