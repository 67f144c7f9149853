r"""Benchmark distillation training: full Lightning step vs pure model compute, per speed option.

For a training config (random weights, the shipped sample slide as data) it prints, side by side in
one process: the data pipeline's ceiling (DataLoader alone, per worker count), samples/s of the full
training step (real `DistillDataModule` with augmentation and collate through the DataLoader, the
real `DistillationModule` losses, optimiser, clipping and EMA through `Trainer.fit`), samples/s of
the pure compute on one pre-made batch of the same shapes (teacher forward + student forward /
backward + AdamW), the FLOPs of both models per sample (`FlopCounterMode`), model FLOPs
utilisation against the card's bf16 peak, and peak memory, for each speed option on and off.
The last line is ``ratio=<full step / pure compute>`` of the baseline (best worker count).

    python scripts/bench_train.py                                   # configs/demo.yaml, CPU
    python scripts/bench_train.py --teacher vit_base_patch14_reg4_dinov2 \
        --student vit_small_patch14_reg4_dinov2 --batch-size 4 --set data.source.tile_size=224 \
        --set data.crops='{global_size: 224, local_size: 98, n_local: 8}'   # issue 3's CPU target
    python scripts/bench_train.py --config configs/h0mini.yaml --steps 200   # one GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

import vitkd  # noqa: F401  (offline environment first)
from slides.atomic import write_text_atomic
from vitkd.data.collate import MaskConfig
from vitkd.data.datamodule import CropConfig, DistillDataModule, TileSource
from vitkd.distill import throughput as tp
from vitkd.distill.module import DistillationModule
from vitkd.distill.speed import set_attention

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = (
    "baseline",
    "attention=eager",
    "fused_adamw=off",
    "grad_checkpointing",
    "augment_device=gpu",
    "augment_device=cpu",
    "compile_student",
    "compile_student+teacher",
)
TARGET_RATE = 250  # samples/s per H100 (issue 7): the rate the data pipeline must sustain


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml")
    p.add_argument("--teacher", help="teacher preset / timm name (replaces the config's)")
    p.add_argument("--student", help="student preset / timm name (replaces the config's)")
    p.add_argument("--teacher-kwargs", type=json.loads, help="JSON timm kwargs of the teacher")
    p.add_argument("--student-kwargs", type=json.loads, help="JSON timm kwargs of the student")
    p.add_argument("--model-kwargs", type=json.loads, help="JSON kwargs for both (e.g. img_size)")
    p.add_argument("--batch-size", type=int, help="images per step (default: the config's)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted config override, YAML value (e.g. data.crops.n_local=8); repeatable",
    )
    p.add_argument("--steps", type=int, help="timed steps of the baseline (CPU 6, GPU 200)")
    p.add_argument("--option-steps", type=int, default=30, help="timed steps per speed option")
    p.add_argument("--warmup", type=int, help="untimed steps first (CPU 2, GPU 10; +compile)")
    p.add_argument("--workers", help="comma list of DataLoader worker counts for the baseline")
    p.add_argument("--data-batches", type=int, default=6, help="batches timed for the ceiling")
    p.add_argument("--options", help=f"comma list or 'all' of {', '.join(OPTIONS)}")
    p.add_argument("--accelerator", choices=("auto", "cpu", "gpu"), default="auto")
    p.add_argument("--peak-tflops", type=float, help="peak for MFU (default: table by card)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--quick", action="store_true", help="2 timed steps, baseline only")
    return p.parse_args(argv)


def load_config(args: argparse.Namespace, on_cuda: bool) -> tuple[dict, dict, dict]:
    """(model, data, trainer) sections with the benchmark's overrides applied."""
    cfg = yaml.safe_load(args.config.read_text())
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE, e.g. data.crops.n_local=8")
        *parents, leaf = key.split(".")
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    model, data, trainer = cfg.get("model", {}), cfg.get("data", {}), cfg.get("trainer", {})
    model.setdefault("teacher", {})
    model.setdefault("student", {})
    model["teacher"]["weights"] = None  # random init: nothing to download or read
    model["teacher"]["heads"] = None
    for role in ("teacher", "student"):
        if getattr(args, role):
            model[role]["name"] = getattr(args, role)
            model[role]["kwargs"] = {}
        extra = {**(args.model_kwargs or {}), **(getattr(args, f"{role}_kwargs") or {})}
        if extra:
            model[role]["kwargs"] = {**model[role].get("kwargs", {}), **extra}
    data.setdefault("source", {})
    data["source"].update(slides=None, tiles=None, skip_errors=False)  # the shipped sample slide
    if args.batch_size:
        data["batch_size"] = args.batch_size
    if data.get("augment_device") == "auto":
        data["augment_device"] = "gpu" if on_cuda else "cpu"  # what the trainer would pick
    trainer["precision"] = trainer.get("precision") if on_cuda else "32-true"
    trainer["precision"] = trainer["precision"] or ("bf16-mixed" if on_cuda else "32-true")
    return model, data, trainer


def build_data(data: dict, draws: int) -> DistillDataModule:
    """The real data module, with enough draws per epoch for the whole benchmark."""
    d = dict(data)
    source = TileSource(**d.pop("source", {}))
    crops = CropConfig(**d.pop("crops", {}))
    masking = MaskConfig(**d.pop("masking", {}))
    d["samples_per_epoch"] = max(int(d.get("samples_per_epoch") or 0), draws)
    return DistillDataModule(source=source, crops=crops, masking=masking, **d)


def fit_rate(
    module: DistillationModule,
    dm: DistillDataModule,
    accelerator: str,
    precision: str,
    warmup: int,
    steps: int,
) -> tuple[float, float]:
    """(samples/s, peak memory GB) of the full training step through `Trainer.fit`."""
    warmup = max(warmup, 1)  # a timed step is measured from the end of the step before it
    timer = tp.StepTimer(warmup, steps)
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    tp.reset_peak_memory(device)
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_steps=warmup + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        default_root_dir=str(ROOT / "runs" / "bench_train"),
        log_every_n_steps=50,
    )
    trainer.fit(module, datamodule=dm)
    rate, memory = timer.rate, tp.peak_memory_gb(device)
    del trainer
    gc.collect()
    return rate, memory


def device_batch(module: DistillationModule, dm: DistillDataModule) -> dict[str, Any]:
    """One real batch, moved to the module's device and finished there (device augmentation)."""
    batch = next(iter(dm.train_dataloader()))
    batch = L.pytorch.utilities.move_data_to_device(batch, module.device)
    return dm.on_after_batch_transfer(batch, 0)


def option_switch(name: str, module: DistillationModule, dm: DistillDataModule) -> Callable:
    """Apply one speed option; returns the function that undoes it (compile cannot be undone)."""
    if name == "baseline":
        return lambda: None
    if name == "attention=eager":
        set_attention(module, "eager")
        return lambda: set_attention(module, module.speed.attention)
    if name == "fused_adamw=off":
        old = module.optim
        module.optim = dataclasses.replace(old, fused="off")
        return lambda: setattr(module, "optim", old)
    if name == "grad_checkpointing":
        module.student.model.set_grad_checkpointing(True)
        return lambda: module.student.model.set_grad_checkpointing(False)
    if name in ("augment_device=cpu", "augment_device=gpu"):
        dm.augment_device, old = name.split("=")[1], dm.augment_device
        return lambda: setattr(dm, "augment_device", old)
    if name.startswith("compile_student"):
        module.speed = dataclasses.replace(
            module.speed, compile_student=True, compile_teacher=name.endswith("+teacher")
        )
        return lambda: None
    raise SystemExit(f"unknown option {name!r}; valid: {', '.join(OPTIONS)}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print the table; returns the results."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    on_cuda = args.accelerator == "gpu" or (
        args.accelerator == "auto" and torch.cuda.is_available()
    )
    accelerator = "gpu" if on_cuda else "cpu"
    device = torch.device("cuda" if on_cuda else "cpu")
    model_cfg, data_cfg, trainer_cfg = load_config(args, on_cuda)
    precision = trainer_cfg["precision"]
    steps = 2 if args.quick else args.steps or (200 if on_cuda else 6)
    warmup = args.warmup if args.warmup is not None else (10 if on_cuda else 2)
    options = ["baseline"] if args.quick else (args.options or ("all" if on_cuda else "baseline"))
    options = list(OPTIONS) if options == "all" else options
    options = options.split(",") if isinstance(options, str) else options
    # compile cannot be undone: run those last
    options = sorted(options, key=lambda o: o.startswith("compile"))
    workers = [int(w) for w in (args.workers or str(data_cfg.get("num_workers", 2))).split(",")]
    batch_size = int(data_cfg.get("batch_size", 32))
    longest = max(steps, args.option_steps) + warmup + 8
    dm = build_data(data_cfg, draws=longest * batch_size * 2)
    torch.manual_seed(0)
    module = DistillationModule(**model_cfg)
    if module.targets == "prototypes":
        module.heads_ready.fill_(True)  # random teacher heads: the benchmark skips head fitting
    print(f"config {args.config}  device {tp.device_name(device)}  precision {precision}")
    print(
        f"teacher {module.teacher_cfg.name} {module.teacher_cfg.kwargs}  "
        f"student {module.student_cfg.name} {module.student_cfg.kwargs}  "
        f"targets {module.targets}  batch {batch_size}  crops {data_cfg.get('crops', {})}"
    )
    dm.setup("fit")
    # switching to the configured augmentation path is the baseline again: skip it
    options = [o for o in options if o != f"augment_device={dm.augment_device}"]
    module.to(device)
    results: dict[str, Any] = {"device": tp.device_name(device), "options": {}, "ceiling": {}}

    # data pipeline ceiling: the DataLoader alone (plus the device augmentation when on)
    def finish(batch: dict) -> None:
        batch = L.pytorch.utilities.move_data_to_device(batch, device)
        dm.on_after_batch_transfer(batch, 0)
        tp.synchronize(device)

    # both paths on CUDA, the configured one first; the device path only makes sense there
    paths = [dm.augment_device] + (
        [{"cpu": "gpu", "gpu": "cpu"}[dm.augment_device]] if on_cuda else []
    )
    for path in paths:
        dm.augment_device, configured = path, dm.augment_device
        for w in workers:
            dm.num_workers = w
            # drain the batches the workers prefetched while starting: time the steady state
            drain = 2 + w * dm.prefetch_factor
            loader = dm.train_dataloader()
            rate = tp.loader_rate(loader, args.data_batches, drain, to_device=finish)
            results["ceiling"][f"{path}/{w}"] = rate
            # one worker process keeps one core busy (the main process does the work at w=0)
            per_core = rate / max(w, 1)
            print(
                f"data ceiling  augment on {path}, workers={w}: {rate:8.1f} samples/s "
                f"({per_core:.1f} per core: {TARGET_RATE / per_core:.0f} cores for "
                f"{TARGET_RATE} samples/s)"
            )
        dm.augment_device = configured
    gc.collect()

    flops = None
    peak = args.peak_tflops or tp.peak_tflops(device)
    rows = []
    for option in options:
        undo = option_switch(option, module, dm)
        n_steps = steps if option == "baseline" else args.option_steps
        n_warm = warmup + (3 if option.startswith("compile") else 0)
        for w in workers if option == "baseline" else [workers[-1]]:
            dm.num_workers = w
            full, mem_full = fit_rate(module, dm, accelerator, precision, n_warm, n_steps)
            module.to(device)
            batch = device_batch(module, dm)
            if flops is None:
                flops = tp.count_flops(module, batch)
            fused = module.optim.fused == "on" or (module.optim.fused == "auto" and on_cuda)
            tp.reset_peak_memory(device)
            # the pure step has no pipeline to settle: a few dozen steps give its median
            pure = tp.pure_rate(module, batch, precision, n_warm, min(n_steps, 30), fused)
            mem_pure = tp.peak_memory_gb(device)
            per_sample = flops["teacher"] + flops["student"]
            mfu = full * per_sample / (peak * 1e12) if peak else None
            row = {
                "option": option,
                "workers": w,
                "full": full,
                "pure": pure,
                "ratio": full / pure,
                "tflops": full * per_sample / 1e12,
                "mfu": mfu,
                "mem_full_gb": mem_full,
                "mem_pure_gb": mem_pure,
            }
            rows.append(row)
            save(args.json, {**results, "options": rows, "flops_per_sample": flops})
            mfu_text = f"{100 * mfu:5.1f}%" if mfu is not None else "  n/a"
            print(
                f"{option:24s} w={w}  full {full:8.2f}/s  pure {pure:8.2f}/s  "
                f"ratio {full / pure:5.3f}  {row['tflops']:7.2f} TFLOP/s  MFU {mfu_text}  "
                f"peak mem {mem_full:6.2f} / {mem_pure:6.2f} GB",
                flush=True,
            )
            del batch
            gc.collect()
        undo()
    results["options"] = rows
    results["flops_per_sample"] = flops
    results["peak_tflops"] = peak
    print(
        f"FLOPs per sample: teacher {flops['teacher'] / 1e9:.2f} G, student fwd+bwd "
        f"{flops['student'] / 1e9:.2f} G; peak {peak or 'n/a'} TFLOP/s (bf16 dense)"
    )
    print_table(rows, results["ceiling"])
    best = max((r for r in rows if r["option"] == "baseline"), key=lambda r: r["ratio"])
    results["ratio"] = best["ratio"]
    save(args.json, results)
    print(f"baseline workers={best['workers']}: full {best['full']:.2f} / pure {best['pure']:.2f}")
    print(f"ratio={best['ratio']:.3f}")
    return results


def save(path: Path | None, results: dict) -> None:
    """Write the results as JSON (after every row, so a timed-out run keeps what it measured)."""
    if path is None:
        return
    write_text_atomic(path, json.dumps(results, indent=2, default=str))


def print_table(rows: list[dict], ceiling: dict) -> None:
    """A markdown table of the rows (docs/scaling.md takes it as is)."""
    print(
        "\n| option | workers | full samples/s | pure samples/s | full/pure | TFLOP/s | MFU | peak mem GB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        print(
            f"| {r['option']} | {r['workers']} | {r['full']:.2f} | {r['pure']:.2f} | "
            f"{r['ratio']:.3f} | {r['tflops']:.2f} | {mfu} | {r['mem_full_gb']:.2f} |"
        )
    text = ", ".join(
        f"augment on {k.split('/')[0]} with {k.split('/')[1]} workers {v:.1f}/s "
        f"({v / max(int(k.split('/')[1]), 1):.1f}/s per core)"
        for k, v in ceiling.items()
    )
    print(f"\ndata pipeline ceiling: {text}\n")


if __name__ == "__main__":
    main()
