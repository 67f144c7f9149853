"""Copy a pretraining run's EMA export into `vitkd/demo_teacher/` with its provenance.

The demo teacher is pretrained by self-distillation (`configs/pretrain_tiny.yaml`):

    python -m vitkd.train --config configs/pretrain_tiny.yaml          # ~70 min on 2 busy cores
    python scripts/ship_demo_teacher.py runs/vitkd/<run>               # this script

It writes `model.safetensors` + timm `config.json` (from the run's `export/`), `PROVENANCE.md`
(data with checksums, the resolved config, seed, steps, wall time, the loss and collapse curves
as a table, the command that reproduces it) and `curves.png`, each atomically. It refuses a run
that is not self-distillation, has no export, or whose weights exceed the size limit.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "vitkd" / "demo_teacher"
MAX_MB = 25.0
CURVE = ("train/loss", "train/dino", "train/ibot", "train/koleo")
COLLAPSE = ("collapse/cls_std", "collapse/prototypes_used", "collapse/target_entropy")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _rows(run: Path) -> list[dict[str, float]]:
    """Per-step rows of metrics.csv with the columns of CURVE and COLLAPSE."""
    out: dict[int, dict[str, float]] = {}
    with (run / "metrics.csv").open() as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            for key in CURVE + COLLAPSE:
                if row.get(key):
                    out.setdefault(step, {})[key] = float(row[key])
    return [dict(step=s, **v) for s, v in sorted(out.items())]


def _curves_png(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for key in CURVE:
        pts = [(r["step"], r[key]) for r in rows if key in r]
        axes[0].plot(*zip(*pts, strict=True), label=key.split("/")[1], lw=0.8)
    axes[0].set_xlabel("step")
    axes[0].set_title("losses")
    axes[0].legend(fontsize=8)
    for key in COLLAPSE:
        pts = [(r["step"], r[key]) for r in rows if key in r]
        axes[1].plot(*zip(*pts, strict=True), label=key.split("/")[1], lw=0.8)
    axes[1].set_xlabel("step")
    axes[1].set_title("collapse watch")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def _table(rows: list[dict[str, float]], every: int) -> str:
    keys = CURVE + COLLAPSE
    lines = [
        "| step | " + " | ".join(k.split("/")[1] for k in keys) + " |",
        "| --- | " + " | ".join("---" for _ in keys) + " |",
    ]
    picked = [r for r in rows if r["step"] % every == 0] + rows[-1:]
    for r in picked:
        cells = [f"{r[k]:.3f}" if k in r else "" for k in keys]
        lines.append(f"| {r['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Check the run, copy the weights, write PROVENANCE.md and curves.png."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run", type=Path, help="the pretraining run folder (holds summary.json)")
    p.add_argument("--dest", type=Path, default=DEST)
    p.add_argument("--command", default="python -m vitkd.train --config configs/pretrain_tiny.yaml")
    p.add_argument("--note", default="", help="a paragraph on the machine and its load")
    args = p.parse_args(argv)

    summary = json.loads((args.run / "summary.json").read_text())
    if summary.get("targets") != "self":
        p.error(f"{args.run}: targets={summary.get('targets')!r}, not a self-distillation run")
    export = args.run / "export"
    weights = export / "model.safetensors"
    if not weights.is_file():
        p.error(f"{args.run}: no export/model.safetensors (was the run cut short?)")
    size_mb = weights.stat().st_size / 2**20
    if size_mb > MAX_MB:
        p.error(f"{weights}: {size_mb:.1f} MB, over the {MAX_MB} MB a shipped teacher may take")
    config = yaml.safe_load((args.run / "config.yaml").read_text())
    rows = _rows(args.run)
    args.dest.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "config.json"):
        tmp = args.dest / f".{name}.tmp"
        shutil.copyfile(export / name, tmp)
        tmp.replace(args.dest / name)
    _curves_png(rows, args.dest / "curves.png")
    data = config["data"]["source"]
    slides_md = "\n".join(
        f"- `{Path(s).name}`, md5 `{_md5(Path(s))}`" for s in _slide_files(data.get("slides"))
    )
    text = f"""# The vitkd demo teacher: provenance

A small ViT pretrained **from scratch on two slides** by self-distillation (DINOv2's recipe with
the EMA of the student as teacher: DINO + iBOT heads, Sinkhorn-Knopp centring, KoLeo,
multi-crop, iBOT masking). It is a CPU-trained toy that makes the demo and the tests distil a
teacher that has learnt something about H&E; it is **not a foundation model** and its features
are no substitute for a pathology encoder. Its measured quality against a random ViT and a
colour histogram is in `benchmarks/results/` (`bench_quality`).

| | |
| --- | --- |
| architecture | `{config["model"]["student"]["name"]}` {json.dumps(config["model"]["student"]["kwargs"])} |
| parameters | {_params(weights):,} |
| weights | `model.safetensors` ({size_mb:.1f} MB, md5 `{_md5(weights)}`) + timm `config.json` |
| seed | {config.get("seed_everything")} |
| steps | {summary["steps"]} x batch {config["data"]["batch_size"]} |
| wall time | {summary["seconds"]:.0f} s |
| data | tiles of {data.get("tile_size")} px at {data.get("mpp")} um/px, overlap {data.get("overlap")}, min tissue {data.get("min_tissue")} |
| final collapse watch | {json.dumps({k: round(v, 3) for k, v in summary.get("collapse", {}).items()})} |

{args.note}

## Data

{slides_md}

Both are in `slides/samples/` with their sources and licences (`slides/samples/README.md`).

## Reproduce

```bash
{args.command}
python scripts/ship_demo_teacher.py runs/vitkd/<run>
```

The exact configuration of this run (LightningCLI's resolved `config.yaml`):

```yaml
{yaml.safe_dump({k: config[k] for k in ("seed_everything", "model", "data")}, sort_keys=False).strip()}
```

## Loss and collapse curves

![curves](curves.png)

`dino` sitting at ln K (K prototypes) means the teacher's targets are still close to uniform;
`cls_std` (spread of the normalised CLS, about 1 when isotropic) and `prototypes_used` falling
to their floor would mean collapse (see `vitkd/distill/collapse.py`).

{_table(rows, every=max(1, summary["steps"] // 20))}
"""
    tmp = args.dest / ".PROVENANCE.md.tmp"
    tmp.write_text(text)
    tmp.replace(args.dest / "PROVENANCE.md")
    print(f"shipped {weights} ({size_mb:.1f} MB) -> {args.dest}")


def _slide_files(slides: list[str] | None) -> list[Path]:
    import slides as slides_pkg

    out: list[Path] = []
    for entry in slides or [str(slides_pkg.SAMPLE_SLIDE)]:
        if entry == slides_pkg.SAMPLES:
            out.extend(slides_pkg.SAMPLE_SLIDES)
        else:
            out.extend(slides_pkg.find_slides(entry))
    return out


def _params(weights: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        return sum(_numel(f, k) for k in f.keys())


def _numel(handle, key: str) -> int:
    n = 1
    for d in handle.get_slice(key).get_shape():
        n *= d
    return n


if __name__ == "__main__":
    main()
