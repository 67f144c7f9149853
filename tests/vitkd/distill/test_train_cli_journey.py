"""What a new user did with `python -m vitkd.train`, and what they get now."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vitkd.distill.config import TeacherConfig
from vitkd.distill.cpu_guard import _forward_flops, _vit_shape, estimate_step
from vitkd.models import build_backbone
from vitkd.models.builtin import DEMO_TEACHER, WeightsNotGivenError, resolve_weights
from vitkd.train import cli_main, main

ROOT = Path(__file__).resolve().parents[3]
H0MINI = str(ROOT / "configs" / "h0mini.yaml")


def test_trainer_options_alone_keep_the_demo(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--trainer.max_steps", "5", "--print_config"])
    printed = capsys.readouterr().out
    assert "builtin:demo-teacher" in printed  # the demo's teacher, not the h-optimus-0 default
    assert "max_steps: 5" in printed
    assert "h-optimus-0" not in printed


def test_an_abbreviated_key_is_an_error_naming_it(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--trainer.max_step", "5", "--print_config"])
    assert info.value.code != 0
    assert "--trainer.max_step" in capsys.readouterr().err


def test_missing_teacher_weights_are_one_line_before_any_model_is_built(
    monkeypatch, capsys
) -> None:
    import vitkd.models.backbone as backbone

    def never(*args, **kwargs):
        raise AssertionError("a model was built before the weights were checked")

    monkeypatch.setattr(backbone, "Backbone", never)
    assert cli_main(["--config", H0MINI, "--model.teacher.weights", "/nope/h0.bin"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: weights not found: /nope/h0.bin")


def test_a_full_size_pair_on_the_cpu_is_refused_with_its_estimate(monkeypatch, capsys) -> None:
    import vitkd.models.backbone as backbone

    monkeypatch.setattr(backbone, "Backbone", None)  # nothing may be built
    args = ["--config", H0MINI, "--model.teacher.weights", "random"]
    assert cli_main([*args, "--trainer.accelerator", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "1,135 M-parameter teacher" in err and "TFLOP per step" in err
    assert "--allow_slow_cpu true" in err


def test_a_teacher_without_weights_is_an_error_that_names_the_fixes() -> None:
    from distill_fixtures import tiny_module

    with pytest.raises(WeightsNotGivenError, match=r"builtin:demo-teacher.*`random`"):
        tiny_module(teacher=TeacherConfig(name="vit_small_patch14_reg4_dinov2"))
    assert resolve_weights("builtin:demo-teacher", "k") == str(DEMO_TEACHER)
    assert resolve_weights("random", "k") is None
    with pytest.raises(ValueError, match="no built-in weights 'nope'"):
        resolve_weights("builtin:nope", "model.teacher.weights")


def test_the_step_estimate_matches_torch_flop_counting() -> None:
    kwargs = {"depth": 2, "embed_dim": 64, "num_heads": 2, "img_size": 56}
    name = "vit_small_patch14_reg4_dinov2"
    model = build_backbone(name, **kwargs).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.forward_tokens(torch.zeros(3, 3, 56, 56))
    estimate = _forward_flops(_vit_shape(name, kwargs), 56, 3)
    assert estimate == pytest.approx(counter.get_total_flops(), rel=0.1)
    step = estimate_step(
        {"targets": "self", "student": {"name": name, "kwargs": kwargs}},
        {"batch_size": 3, "crops": {"global_size": 56, "local_size": 28, "n_local": 2}},
    )
    assert step.seconds > 0 and step.flops > 3 * estimate
