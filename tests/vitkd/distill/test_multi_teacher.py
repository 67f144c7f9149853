"""Several teachers: normalisation per teacher, weights routing, dropping, one-teacher parity."""

from __future__ import annotations

import math

import pytest
import torch
from distill_fixtures import ARCH, SIZE, tiny_data, tiny_module, trainer

from vitkd.distill.config import BalanceConfig, TeacherConfig
from vitkd.distill.module import DistillationModule
from vitkd.distill.teacher_set import dropped_teachers

TEACHER_A = TeacherConfig(
    name=ARCH,
    weights="random",
    kwargs={"depth": 1, "embed_dim": 48, "num_heads": 2, "img_size": SIZE},
)
# a patch-8 teacher with timm's 0.5 mean/std: a 7x7 grid against the student's 4x4, so the
# teacher grid is resized to the student's
TEACHER_B = TeacherConfig(
    name="vit_small_patch16_224",
    weights="random",
    key="b16",
    kwargs={"depth": 1, "embed_dim": 64, "num_heads": 2, "img_size": SIZE, "patch_size": 8},
    cls_weight=0.5,
    patch_weight=0.125,
)


def _batch(n: int = 2, size: int = SIZE, n_global: int = 2, n_local: int = 2) -> dict:
    g = torch.Generator().manual_seed(0)
    views = torch.randint(0, 256, (n_global * n, 3, size, size), generator=g, dtype=torch.uint8)
    return {
        "global": views,
        "teacher": views,
        "local": torch.randint(0, 256, (n_local * n, 3, 28, 28), generator=g, dtype=torch.uint8),
        "masks": torch.zeros(n_global * n, (size // 14) ** 2, dtype=torch.bool),
        "n_images": n,
    }


def _two_teacher_module(**overrides) -> DistillationModule:
    return tiny_module(teacher=TeacherConfig(), teachers=[TEACHER_A, TEACHER_B], **overrides)


def test_one_listed_teacher_is_todays_module_bit_for_bit(tmp_path) -> None:
    torch.manual_seed(0)
    plain = tiny_module()
    torch.manual_seed(0)
    listed = tiny_module(teacher=TeacherConfig(), teachers=[plain.teacher_cfg])
    assert plain.state_dict().keys() == listed.state_dict().keys()
    for key, value in plain.state_dict().items():
        assert torch.equal(value, listed.state_dict()[key]), key
    batch = _batch()
    a, b = plain.compute_losses(batch), listed.compute_losses(batch)
    assert a.keys() == b.keys() == {"feature_cls", "feature_patch", "feature_local", "koleo"}
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(plain.weighted_total(a), listed.weighted_total(b))


def test_two_teachers_terms_are_named_and_weighted_per_teacher() -> None:
    module = _two_teacher_module()
    keys = [e.key for e in module.teacher_entries]
    assert keys == [ARCH, "b16"]
    terms = module.compute_losses(_batch())
    expected = {f"{k}/{t}" for k in keys for t in ("feature_cls", "feature_patch", "feature_local")}
    assert expected | {"koleo"} == set(terms)
    losses = module.losses
    assert module.term_weight("b16/feature_cls") == losses.feature_cls * 0.5
    assert module.term_weight("b16/feature_local") == losses.feature_local * 0.5
    assert module.term_weight("b16/feature_patch") == losses.feature_patch * 0.125
    assert module.term_weight(f"{ARCH}/feature_patch") == losses.feature_patch
    total = module.weighted_total(terms)
    by_hand = sum(
        {"feature_cls": 1.0, "feature_local": losses.feature_local, "feature_patch": 1.0}[t]
        * (w if k == "b16" else 1.0)
        * terms[f"{k}/{t}"]
        for k in keys
        for t, w in (("feature_cls", 0.5), ("feature_local", 0.5), ("feature_patch", 0.125))
    )
    torch.testing.assert_close(total, by_hand + losses.koleo * terms["koleo"])


def test_each_teachers_loss_reaches_only_its_own_adaptors() -> None:
    module = _two_teacher_module()
    terms = module.compute_losses(_batch())
    terms["b16/feature_cls"].backward()
    b16 = module.extra_objectives["b16"]
    grads = [p.grad for p in b16.cls_adaptor.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert all(p.grad is None for p in module.objective.parameters())
    assert all(p.grad is None for p in b16.patch_adaptor.parameters())
    # each adaptor maps the student width onto its teacher's own width
    assert b16.cls_adaptor(torch.zeros(1, 32)).shape == (1, 64)
    assert module.objective.cls_adaptor(torch.zeros(1, 32)).shape == (1, 48)


def test_each_teacher_normalises_with_its_own_mean_and_std() -> None:
    module = _two_teacher_module()
    a, b = module.teacher, module.extra_teachers["b16"]
    assert a.mean.flatten().tolist() != b.mean.flatten().tolist()  # imagenet vs 0.5
    crops = _batch()["teacher"]
    own = module.forward_teacher(crops, 1).cls
    # the same teacher given the other teacher's normalisation answers differently
    b.mean, b.std = a.mean.clone(), a.std.clone()
    swapped = module.forward_teacher(crops, 1).cls
    assert not torch.allclose(own, swapped, atol=1e-4)


def test_teacher_given_explicit_normalisation_keeps_it() -> None:
    custom = TeacherConfig(
        name=TEACHER_B.name,
        weights="random",
        key="b16",
        kwargs={**TEACHER_B.kwargs, "mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]},
    )
    module = tiny_module(teacher=TeacherConfig(), teachers=[TEACHER_A, custom])
    b = module.extra_teachers["b16"]
    torch.testing.assert_close(b.mean.flatten(), torch.tensor([0.1, 0.2, 0.3]))
    torch.testing.assert_close(b.std.flatten(), torch.tensor([0.4, 0.5, 0.6]))


def test_two_random_teachers_of_one_shape_differ() -> None:
    same = TeacherConfig(**{**TEACHER_A.__dict__, "key": "twin"})
    module = tiny_module(teacher=TeacherConfig(), teachers=[TEACHER_A, same])
    pa = next(module.teacher.parameters())
    pb = next(module.extra_teachers["twin"].parameters())
    assert not torch.equal(pa, pb)


def test_teacher_dropping_is_a_pure_function_of_step_and_keeps_one() -> None:
    keys = ["a", "b", "c"]
    draws = [dropped_teachers(keys, 0.9, seed=3, step=s) for s in range(200)]
    assert draws == [dropped_teachers(keys, 0.9, seed=3, step=s) for s in range(200)]
    assert all(len(d) < len(keys) for d in draws)
    rate = sum(len(d) for d in draws) / (200 * len(keys))
    assert 0.6 < rate < 0.67  # 0.9 capped by the always-kept one: (3 * 0.9 - P(all)) / 3
    assert dropped_teachers(keys, 0.0, seed=3, step=5) == set()


def test_dropped_teacher_weighs_zero_in_the_step() -> None:
    module = _two_teacher_module(balance=BalanceConfig(teacher_drop=0.5))
    module._dropped = {"b16"}
    assert module.term_weight("b16/feature_cls") == 0.0
    assert module.term_weight(f"{ARCH}/feature_cls") == 1.0


def test_per_image_loss_is_the_weighted_cls_disagreement() -> None:
    module = _two_teacher_module()
    batch = _batch(n=3)
    module.compute_losses(batch)
    per_image = module.per_image_loss
    assert per_image.shape == (3,)
    by_hand = 0
    for i, (obj, w) in enumerate(zip(module.teacher_objectives(), (1.0, 0.5), strict=True)):
        s = obj.cls_adaptor(module.student.forward_tokens(batch["global"]).cls)
        t = module.forward_teacher(batch["teacher"], i).cls
        cos = torch.nn.functional.cosine_similarity(s, t, dim=-1).view(2, 3).mean(0)
        by_hand = by_hand + w * (1 - cos)
    torch.testing.assert_close(per_image, by_hand.detach(), atol=1e-5, rtol=1e-5)


def test_two_teachers_train_and_checkpoints_hold_no_teacher(tmp_path) -> None:
    module = _two_teacher_module()
    run = trainer(tmp_path, max_steps=2, enable_checkpointing=True)
    run.fit(module, tiny_data())
    optimised = {id(p) for g in run.optimizers[0].param_groups for p in g["params"]}
    for teacher in module.teacher_models():
        assert not any(id(p) in optimised or p.requires_grad for p in teacher.parameters())
    assert {id(p) for p in module.extra_objectives.parameters()} <= optimised
    ckpt = next(tmp_path.rglob("*.ckpt"))
    state = torch.load(ckpt, weights_only=True, map_location="cpu")
    assert not [k for k in state["state_dict"] if k.startswith(("teacher.", "extra_teachers."))]
    assert [t["key"] for t in state["vitkd_teachers"]] == [ARCH, "b16"]
    resumed = _two_teacher_module()
    resumed.on_load_checkpoint(state)  # fingerprints match
    for key, value in module.extra_teachers.state_dict().items():
        assert torch.equal(value, state["state_dict"][f"extra_teachers.{key}"])


def test_checkpoint_of_another_second_teacher_is_refused(tmp_path) -> None:
    module = _two_teacher_module()
    run = trainer(tmp_path, max_steps=1, enable_checkpointing=True)
    run.fit(module, tiny_data())
    state = torch.load(next(tmp_path.rglob("*.ckpt")), weights_only=True, map_location="cpu")
    state["vitkd_teachers"][1]["fingerprint"] += 1.0
    with pytest.raises(ValueError, match=r"teacher 'b16'.*model.teachers\[1\].weights"):
        _two_teacher_module().on_load_checkpoint(state)


def test_bad_teacher_lists_name_the_teacher() -> None:
    missing = TeacherConfig(name=ARCH, key="nope", kwargs=TEACHER_A.kwargs)
    with pytest.raises(ValueError, match=r"model.teachers\[1\].weights \(teacher 'nope'\)"):
        tiny_module(teacher=TeacherConfig(), teachers=[TEACHER_A, missing])
    with pytest.raises(ValueError, match="both set"):
        tiny_module(teachers=[TEACHER_A, TEACHER_B])
    with pytest.raises(ValueError, match="used twice"):
        tiny_module(
            teacher=TeacherConfig(),
            teachers=[TEACHER_A, TEACHER_A.__class__(**{**TEACHER_A.__dict__, "key": ARCH})],
        )
    with pytest.raises(ValueError, match="features"):
        tiny_module(teacher=TeacherConfig(), teachers=[TEACHER_A, TEACHER_B], targets="prototypes")
    with pytest.raises(ValueError, match="letters, digits"):
        TeacherConfig(key="a.b")


def test_mismatched_teacher_weights_name_the_teacher(tmp_path) -> None:
    from safetensors.torch import save_file

    bad = tmp_path / "wrong.safetensors"
    save_file({"cls_token": torch.zeros(1, 1, 7)}, str(bad))
    wrong = TeacherConfig(**{**TEACHER_B.__dict__, "weights": str(bad)})
    with pytest.raises((ValueError, KeyError, RuntimeError), match=r"model.teachers\[1\] \(b16\)"):
        tiny_module(teacher=TeacherConfig(), teachers=[TEACHER_A, wrong])


def test_phis_standardises_targets_after_fitting(tmp_path) -> None:
    module = _two_teacher_module(balance=BalanceConfig(standardize="phis", standardize_samples=8))
    run = trainer(tmp_path, max_steps=1)
    run.fit(module, tiny_data())
    assert bool(module.standardizers_ready)
    phis = module.standardizers["b16_cls"]
    # the transform is orthogonal up to the one scale: W W^T = I / mean(eigenvalue)
    gram = phis.matrix @ phis.matrix.T
    scale = gram.diagonal().mean()
    torch.testing.assert_close(gram, torch.eye(64) * scale, atol=1e-4 * float(scale), rtol=0)
    x = torch.randn(5, 64)
    torch.testing.assert_close(phis.inverse(phis(x)), x, atol=1e-4, rtol=1e-4)
    assert math.isfinite(float(scale))
