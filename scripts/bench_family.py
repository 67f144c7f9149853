"""A family of students in one run (`model.students`) against one run per student.

DINOv3 distils one teacher into several students at once: the teacher forward, the larger part
of the cost at full size, runs once per batch instead of once per student. This measures that
saving on the CPU with the demo models, in one process, on the same fixed batches:

- `separate`: one `DistillationModule` per student, each running the teacher itself;
- `family`: one module with `model.students` (all of them, one teacher forward per step).

Each side runs `--steps` timed optimiser steps (forward of teacher and students, backward,
AdamW, EMA) after `--warmup` untimed ones. It prints student-samples/s of both (a step of a
family of 3 trains 3 x batch student-samples) and the teacher's share of a separate step's
FLOPs; the last line is ``ratio=<family student-samples/s / separate student-samples/s>``.

    python scripts/bench_family.py --steps 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_quality as bq

# (key, depth, width, heads): the demo student and two larger members
STUDENTS = (("S", 2, 96, 3), ("M", 3, 144, 3), ("L", 4, 192, 3))
# the full-size family the projection prices: H-optimus-0 into ViT-S, ViT-B, ViT-L
FULL_SIZE = ("vit_small_patch14_reg4_dinov2", "h0-mini", "vit_large_patch14_reg4_dinov2")


def full_size_projection() -> tuple[float, float]:
    """(FLOPs of 3 separate steps, FLOPs of one family step) at full size, batch 1, DINOv2 crops
    (2 x 224 + 8 x 98 px): the teacher forward counted once in the family."""
    from vitkd.distill.cpu_guard import estimate_step

    data = {"batch_size": 1, "crops": {"global_size": 224, "local_size": 98, "n_local": 8}}
    steps = [
        estimate_step({"teacher": {"name": "h-optimus-0"}, "student": {"name": s}}, data)
        for s in FULL_SIZE
    ]
    separate = sum(e.flops for e in steps)
    family = steps[0].teacher_flops + sum(e.flops - e.teacher_flops for e in steps)
    return separate, family


def build(students: list[tuple[str, int, int, int]], demo: dict, seed: int):
    """A features-distillation module of the demo teacher with these students."""
    from vitkd.distill.config import HeadConfig, OptimConfig, StudentConfig, TeacherConfig
    from vitkd.distill.module import DistillationModule

    m = demo["model"]
    configs = [
        StudentConfig(
            name=m["student"]["name"],
            key=key,
            kwargs={"depth": d, "embed_dim": w, "num_heads": h, "img_size": 112},
        )
        for key, d, w, h in students
    ]
    t = m["teacher"]
    teacher = TeacherConfig(name=t["name"], weights=t["weights"], kwargs=dict(t["kwargs"]))
    one = len(configs) == 1
    return DistillationModule(
        teacher=teacher,
        student=configs[0] if one else StudentConfig(),
        students=None if one else configs,
        targets="features",
        heads=HeadConfig(**m.get("heads", {})),
        optim=OptimConfig(**m["optim"]),
        seed=seed,
    )


def batch(n: int, seed: int) -> dict:
    """A demo-shaped batch: 2 global 112 px crops (also the teacher's) and 4 local 56 px."""
    g = torch.Generator().manual_seed(seed)
    views = torch.randint(0, 256, (2 * n, 3, 112, 112), generator=g, dtype=torch.uint8)
    return {
        "global": views,
        "teacher": views,
        "local": torch.randint(0, 256, (4 * n, 3, 56, 56), generator=g, dtype=torch.uint8),
        "masks": torch.zeros(2 * n, 64, dtype=torch.bool),
        "n_images": n,
    }


def steps_per_second(module, batches: list[dict], warmup: int) -> float:
    """Optimiser steps per second of `module` over `batches` (the first `warmup` untimed)."""
    from vitkd.distill.ema import ema_update

    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    emas = [(module.ema, module.student)] + [
        (m.ema, m.student) for m in module.family_members().values()
    ]
    start = 0.0
    for i, b in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        total = module.weighted_total(module.compute_losses(b))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        for shadow, online in emas:
            ema_update(shadow, online, 0.99)
    return (len(batches) - warmup) / (time.perf_counter() - start)


def teacher_share(module, b: dict) -> float:
    """The teacher forward's share of one step's FLOPs (forward + backward) of `module`."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as teacher:
        module.forward_teacher(b["teacher"])
    with FlopCounterMode(display=False) as step:
        module.weighted_total(module.compute_losses(b)).backward()
    module.zero_grad(set_to_none=True)
    return teacher.get_total_flops() / step.get_total_flops()


def main(argv: list[str] | None = None) -> None:
    """Time both sides and print the ratio."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=10, help="timed optimiser steps per side")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (median taken)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    demo = bq.demo_config()
    batches = [batch(args.batch_size, args.seed + i) for i in range(args.warmup + args.steps)]
    n = args.batch_size
    lines = [
        f"# bench_family ({time.strftime('%Y-%m-%d')}, {torch.get_num_threads()} threads)",
        "",
        f"demo teacher; students {[s[0] for s in STUDENTS]} (depth, width): "
        f"{[(d, w) for _, d, w, _ in STUDENTS]}; batch {n}, 2 x 112 px + 4 x 56 px crops; "
        f"{args.steps} timed steps after {args.warmup}, median of {args.rounds} alternating rounds",
        "",
        "| run | steps/s | student-samples/s | teacher share of a step's FLOPs |",
        "| --- | --- | --- | --- |",
    ]
    # rounds alternate the four runs, so a change in machine load hits every side alike;
    # each run's rate is its median over the rounds
    modules = {spec[0]: build([spec], demo, args.seed) for spec in STUDENTS}
    modules["family"] = build(list(STUDENTS), demo, args.seed)
    rates: dict[str, list[float]] = {name: [] for name in modules}
    for r in range(args.rounds):
        for name, module in modules.items():
            rates[name].append(steps_per_second(module, batches, args.warmup))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in rates.items()))
    rate = {name: statistics.median(v) for name, v in rates.items()}
    separate_seconds = 0.0
    for spec in STUDENTS:
        key = spec[0]
        separate_seconds += 1.0 / rate[key]
        share = teacher_share(modules[key], batches[0])
        lines.append(f"| separate {key} | {rate[key]:.3f} | {rate[key] * n:.1f} | {share:.2f} |")
    separate = len(STUDENTS) * n / separate_seconds
    lines.append(f"| separate, all {len(STUDENTS)} in turn | – | {separate:.1f} | – |")
    share = teacher_share(modules["family"], batches[0])
    together = rate["family"] * n * len(STUDENTS)
    lines.append(
        f"| family of {len(STUDENTS)} | {rate['family']:.3f} | {together:.1f} | {share:.2f} |"
    )
    separate_flops, family_flops = full_size_projection()
    lines += [
        "",
        f"Full size (H-optimus-0 -> {', '.join(FULL_SIZE)}, per image): 3 separate steps "
        f"{separate_flops / 1e12:.2f} TFLOP, one family step {family_flops / 1e12:.2f} TFLOP: "
        f"projected ratio {separate_flops / family_flops:.2f} (FLOPs, not measured time)",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text + f"\n\nratio={together / separate:.4f}\n")
        tmp.replace(args.out)
    print(f"ratio={together / separate:.4f}")


if __name__ == "__main__":
    main()
