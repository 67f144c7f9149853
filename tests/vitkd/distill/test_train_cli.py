"""`python -m vitkd.train`: every shipped config parses, unknown keys are named, a short run writes
a complete run folder, and `python -m vitkd.export` gives a student plain timm loads strictly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch

from vitkd import export as export_cli
from vitkd.train import main

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))

TINY = [
    "--model.teacher.weights=random",
    "--model.teacher.kwargs",
    '{"depth": 1, "embed_dim": 48, "num_heads": 2, "img_size": 56}',
    "--model.student.kwargs",
    '{"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": 56}',
    "--data.source.tile_size=56",
    "--data.crops.global_size=56",
    "--data.crops.local_size=28",
    "--data.crops.n_local=2",
    "--data.batch_size=4",
    "--data.samples_per_epoch=16",
    "--data.num_workers=0",
    "--trainer.max_steps=3",
    "--trainer.enable_progress_bar=false",
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_config_parses_with_print_config(config: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "model:" in printed and "data:" in printed and "trainer:" in printed


def test_configs_folder_has_the_three_presets() -> None:
    assert {"demo.yaml", "h0mini.yaml", "h0mini_features.yaml"} <= {p.name for p in CONFIGS}


def test_unknown_config_key_is_named(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  losses:\n    dinoo: 1.0\n")
    with pytest.raises(SystemExit):
        main(["--config", str(bad), "--print_config"])
    err = capsys.readouterr().err
    assert "dinoo" in err


def _run(tmp_path: Path, *extra: str) -> Path:
    run = tmp_path / "runs"
    main(
        [
            "--config",
            str(ROOT / "configs" / "demo.yaml"),
            *TINY,
            f"--trainer.default_root_dir={run}",
            *extra,
        ]
    )
    [summary] = run.rglob("summary.json")
    return summary.parent


def test_short_demo_run_writes_a_complete_run_folder(tmp_path, monkeypatch) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_dir = _run(tmp_path)
    # --trainer.default_root_dir alone moves logs, checkpoints, export and summary together
    assert run_dir.is_relative_to(tmp_path / "runs")
    assert not any(elsewhere.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 3
    assert summary["loss_start"] is not None and summary["loss_end"] is not None
    assert "cls" in summary["fidelity_before"] and "ema" in summary["fidelity_after"]
    assert 0.0 <= summary["fidelity_before"]["cls"]["linear_cka"] <= 1.0 + 1e-6
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "metrics.csv").is_file()
    assert (run_dir / "export" / "model.safetensors").is_file()
    assert (run_dir / "teacher" / "model.safetensors").is_file()  # random teacher kept
    assert list(run_dir.rglob("*.ckpt"))


def test_export_cli_gives_a_student_timm_loads_strictly(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_dir = _run(tmp_path)
    [ckpt] = [p for p in run_dir.rglob("*.ckpt") if p.name == "last.ckpt"]
    out = tmp_path / "exported"
    assert export_cli.main([str(ckpt), "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    model = timm.create_model(
        config["architecture"],
        pretrained=True,
        pretrained_cfg_overlay=dict(config["pretrained_cfg"], file=str(out / "model.safetensors")),
        **config["model_args"],
    ).eval()
    ours = export_cli.backbone_from_checkpoint(ckpt)
    x = torch.randint(0, 256, (2, 3, 56, 56), dtype=torch.uint8)
    mean = torch.tensor(config["pretrained_cfg"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["pretrained_cfg"]["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = ours.embed(x, tokens="cls")
        got = model.forward_features((x.float() / 255 - mean) / std)[:, 0]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_export_cli_rejects_a_missing_checkpoint(tmp_path, capsys) -> None:
    assert export_cli.main([str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.ckpt" in capsys.readouterr().err
