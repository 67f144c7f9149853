"""The shipped demo teacher: what it is, that it loads, and that distilling it transfers it."""

from __future__ import annotations

import json

import lightning as L
import pytest
import yaml
from distill_fixtures import trainer

from vitkd.config_files import config_path
from vitkd.data.collate import MaskConfig
from vitkd.data.datamodule import CropConfig, DistillDataModule, TileSource
from vitkd.distill.config import HeadConfig, OptimConfig, StudentConfig, TeacherConfig
from vitkd.distill.module import DistillationModule
from vitkd.distill.summary import RunSummary
from vitkd.models import build_teacher
from vitkd.models.builtin import DEMO_TEACHER

DEMO = yaml.safe_load(config_path("demo.yaml").read_text())
# Measured on the 2-core build machine (2026-12-01): the random-init student scores CLS pc_r2
# -0.068 against the shipped teacher on the 92 held-out tiles, the EMA student after the 300
# steps below 0.139 (+0.207), in about 55 s. The margin leaves room for float noise across CPUs.
MIN_PC_R2_GAIN = 0.15


def test_the_shipped_teacher_is_small_documented_and_loads_strictly() -> None:
    weights = DEMO_TEACHER / "model.safetensors"
    assert weights.stat().st_size < 25 * 2**20
    provenance = (DEMO_TEACHER / "PROVENANCE.md").read_text()
    for fact in ("not a foundation model", "Reproduce", "md5", "wall time", "seed"):
        assert fact in provenance
    config = json.loads((DEMO_TEACHER / "config.json").read_text())
    t = DEMO["model"]["teacher"]
    assert t["weights"] == "builtin:demo-teacher"
    assert config["architecture"] == t["name"]
    for key, value in t["kwargs"].items():
        assert config["model_args"][key] == value, key
    teacher = build_teacher(t["name"], str(DEMO_TEACHER), **t["kwargs"])  # strict
    assert not any(p.requires_grad for p in teacher.parameters())


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_distilling_the_shipped_teacher_lifts_pc_r2_far_above_a_random_student(tmp_path) -> None:
    # ~1 minute: the demo's pair and recipe on the shipped slides, smaller steps
    t, s = DEMO["model"]["teacher"], DEMO["model"]["student"]
    L.seed_everything(0)
    module = DistillationModule(
        teacher=TeacherConfig(name=t["name"], weights=t["weights"], kwargs=t["kwargs"]),
        student=StudentConfig(name=s["name"], kwargs=s["kwargs"]),
        targets="features",
        heads=HeadConfig(**DEMO["model"]["heads"]),
        optim=OptimConfig(**DEMO["model"]["optim"]),
    )
    source = {**DEMO["data"]["source"], "holdout_fraction": 0.4}
    data = DistillDataModule(
        source=TileSource(**source),
        crops=CropConfig(global_size=112, local_size=56, n_local=2),
        masking=MaskConfig(patch_size=14),
        batch_size=16,
        samples_per_epoch=16 * 300,
        num_workers=0,
    )
    summary = RunSummary(export=False)
    trainer(tmp_path, 300, callbacks=[summary]).fit(module, datamodule=data)
    before = summary.before["cls"]["pc_r2"]
    result = json.loads((tmp_path / "summary.json").read_text())
    after = result["fidelity_after"]["ema"]["cls"]["pc_r2"]
    assert summary.before["tiles"] >= 80  # enough held-out tiles for k >= 8 components
    assert after - before > MIN_PC_R2_GAIN, (before, after)
