"""The README's commands in order, on the shipped sample slide and a generated one, each checked.

A new user's journey as a script (issue 16): every step is a subprocess
`sys.executable -m ...` run from the repository root, exactly as the README writes it, with tiny
models so the whole walk takes a few minutes on 2 CPU cores. Steps:

1. console scripts (`vitkd-train`, `vitkd-embed`, `slides-tile`, `vitkd-eval`) answer `--help`;
2. `python -m slides tile` on the shipped samples folder, and on a CSV naming the sample slide
   and a generated slide, in our layout and in TRIDENT's job layout (`--layout trident`);
3. `python -m vitkd.train` (the demo base, tiny overrides, random teacher) from the TRIDENT
   coords (`data.source.coords`);
4. `python -m vitkd.export` of the run's last checkpoint;
5. `python -m vitkd.embed` with the export and with the run's teacher, on the coords of step 2;
   the generated slide again under a second "scanner" (other compression) for PLISM;
6. `python -m evaluation` probe, fidelity, robustness-index, plism, robustness and report on
   what was produced;
7. bad input: a one-line error and a non-zero status (2 for train, embed and evaluation).

Each step checks its outputs (exit status, files, HDF5 shapes and attributes, JSON keys) and the
walk stops at the first failure with the step's log. Logs go to `<out>/logs/<step>.log`; the last
line is `walkthrough: ok, N steps in S s` or `walkthrough: FAILED at <step>`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "slides" / "samples" / "CMU-1-Small-Region.svs"
SCRIPTS = ("vitkd-train", "vitkd-embed", "slides-tile", "vitkd-eval")
TILE = 56  # px at 0.5 um/px: tiny models see 56 px crops
TINY = [
    "--model.teacher.weights",
    "random",
    "--model.teacher.kwargs",
    '{"depth": 1, "embed_dim": 48, "num_heads": 2, "img_size": 56}',
    "--model.student.kwargs",
    '{"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": 56}',
    "--data.source.tile_size",
    str(TILE),
    "--data.crops.global_size",
    "56",
    "--data.crops.local_size",
    "28",
    "--data.crops.n_local",
    "2",
    "--data.batch_size",
    "4",
    "--data.samples_per_epoch",
    "16",
    "--data.num_workers",
    "0",
    "--trainer.max_steps",
    "3",
    "--trainer.enable_progress_bar",
    "false",
]


class StepFailed(Exception):
    """A step's command or one of its checks failed."""


def check(ok: bool, message: str) -> None:
    """Raise `StepFailed(message)` unless `ok`."""
    if not ok:
        raise StepFailed(message)


class Walk:
    """Runs the commands under `out`, one log file per step, and times them."""

    def __init__(self, out: Path, timeout: float) -> None:
        self.out = out
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.steps = 0
        self.env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "NO_ALBUMENTATIONS_UPDATE": "1",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }

    def run(self, name: str, argv: Sequence[str], expect: int | None = 0) -> str:
        """Run `argv` from the repository root; return its stdout + stderr.

        Args:
            name: step name (log file `<out>/logs/<name>.log`).
            argv: the command; a leading `-m` or script path is run with `sys.executable`.
            expect: required exit status; `None`: any non-zero status.
        """
        cmd = [sys.executable, *argv] if argv[0] == "-m" or argv[0].endswith(".py") else argv
        start = time.perf_counter()
        done = subprocess.run(
            [str(c) for c in cmd],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=self.timeout,
        )
        seconds = time.perf_counter() - start
        log = self.logs / f"{name}.log"
        shown = " ".join(str(c) for c in argv)
        log.write_text(
            f"$ {shown}\n# exit {done.returncode}, {seconds:.1f} s\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        self.steps += 1
        print(f"[{self.steps:2d}] {name}: exit {done.returncode}, {seconds:.1f} s", flush=True)
        if expect is None:
            check(done.returncode != 0, f"{name}: expected a failure, got exit 0 (see {log})")
        else:
            check(
                done.returncode == expect,
                f"{name}: exit {done.returncode}, expected {expect}; "
                f"last output:\n{(done.stdout + done.stderr)[-2000:]}",
            )
        return done.stdout + done.stderr

    def bad_input(self, name: str, argv: Sequence[str], status: int, needle: str) -> list[str]:
        """A bad input: exit `status`, no traceback, one `error:` line (the last) naming `needle`.

        Returns the other stderr lines (log lines and warnings printed before the error).
        """
        cmd = [sys.executable, *argv]
        done = subprocess.run(
            [str(c) for c in cmd],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=self.timeout,
        )
        self.steps += 1
        (self.logs / f"{name}.log").write_text(
            f"$ {' '.join(str(c) for c in argv)}\n# exit {done.returncode}\n--- stderr\n{done.stderr}"
        )
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "error:" in line]
        print(f"[{self.steps:2d}] {name}: exit {done.returncode}, {lines[-1:]}", flush=True)
        check(done.returncode == status, f"{name}: exit {done.returncode}, expected {status}")
        check("Traceback" not in done.stderr, f"{name}: a traceback:\n{done.stderr}")
        check(
            len(errors) == 1 and lines[-1] == errors[0],
            f"{name}: expected one error line, last:\n{done.stderr}",
        )
        check(needle in errors[0], f"{name}: the error does not name {needle!r}: {errors[0]}")
        return lines[:-1]


def read_json(path: Path, keys: Sequence[str]) -> dict:
    """The JSON object in `path`, after checking it has `keys`."""
    check(path.is_file(), f"{path} was not written")
    data = json.loads(path.read_text())
    missing = [k for k in keys if k not in data]
    check(not missing, f"{path}: missing keys {missing}; has {sorted(data)}")
    return data


def check_eval_out(folder: Path, keys: Sequence[str]) -> dict:
    """An evaluation --out folder: results.json with `keys`, args.json, a CSV table."""
    check((folder / "args.json").is_file(), f"{folder}/args.json was not written")
    check(any(folder.glob("*.csv")), f"{folder}: no CSV table")
    check(not list(folder.glob("*.tmp*")), f"{folder}: temporary files left behind")
    return read_json(folder / "results.json", keys)


def check_coords(path: Path, size: int) -> np.ndarray:
    """A TRIDENT coords file: `coords` (N, 2) int64 with patch_size = `size`; its coords."""
    check(path.is_file(), f"{path} was not written")
    with h5py.File(path, "r") as h5:
        coords = h5["coords"]
        check(coords.ndim == 2 and coords.shape[1] == 2, f"{path}: coords {coords.shape}")
        check(coords.dtype == np.int64, f"{path}: coords dtype {coords.dtype}")
        check(int(coords.attrs["patch_size"]) == size, f"{path}: patch_size != {size}")
        check(len(coords) > 0, f"{path}: no tiles")
        return coords[:]


def check_features(path: Path, dim: int, coords: np.ndarray) -> np.ndarray:
    """An embedding file: `features` (N, dim) float32 on the given coords, encoder attributes."""
    check(path.is_file(), f"{path} was not written")
    with h5py.File(path, "r") as h5:
        features = h5["features"]
        check(features.shape == (len(coords), dim), f"{path}: features {features.shape}")
        check(features.dtype == np.float32, f"{path}: features dtype {features.dtype}")
        check(np.array_equal(h5["coords"][:], coords), f"{path}: coords differ from the tiling")
        for attr in ("encoder", "encoder_arch", "tokens", "vitkd_version", "mpp"):
            check(attr in features.attrs, f"{path}: features has no {attr!r} attribute")
        values = features[:]
    check(bool(np.isfinite(values).all()), f"{path}: non-finite features")
    return values


def make_slides(out: Path) -> tuple[Path, Path, Path]:
    """The generated slide (and its twin under another compression) and a CSV of both slides."""
    from slides.synthetic import write_synthetic_slide

    generated = out / "slides" / "jpeg" / "generated.tif"
    twin = out / "slides" / "zlib" / "generated.tif"
    for path, compression in ((generated, "jpeg"), (twin, "zlib")):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic_slide(path, width=1024, height=1024, seed=3, compression=compression)
    listing = out / "slides.csv"
    with listing.open("w", newline="") as f:
        csv.writer(f).writerows([["path"], [SAMPLE], [generated]])
    return listing, generated, twin


def walk(out: Path, timeout: float) -> int:
    """Run every step under `out`; return the number of steps."""
    w = Walk(out, timeout)
    bindir = Path(sys.executable).parent

    # 1. console scripts beside the interpreter (installed by `pip install -e .`)
    for script in SCRIPTS:
        exe = bindir / script
        check(exe.is_file(), f"{exe}: console script not installed (pip install -e .)")
        text = w.run(f"console_{script}", [str(exe), "--help"])
        check("usage" in text.lower(), f"{script} --help printed no usage")

    # 2. tiling, both layouts
    listing, generated, twin = make_slides(out)
    tiles, trident = out / "tiles", out / "tiles_trident"
    common = ["--mpp", "0.5", "--size", str(TILE)]
    w.run("tile", ["-m", "slides", "tile", listing, "--out", tiles, *common])
    w.run(
        "tile_trident",
        ["-m", "slides", "tile", listing, "--out", trident, *common, "--layout", "trident"],
    )
    coords = {}
    for stem in (SAMPLE.stem, generated.stem):
        coords[stem] = check_coords(tiles / f"{stem}.h5", TILE)
        check((tiles / f"{stem}.png").is_file(), f"no thumbnail for {stem}")
        same = check_coords(trident / "patches" / f"{stem}_patches.h5", TILE)
        check(np.array_equal(same, coords[stem]), f"{stem}: the two layouts differ")
        check((trident / "visualization" / f"{stem}.png").is_file(), f"no trident png {stem}")
    # the README's try-it command: both shipped slides (the TCGA one has no MPP in its file)
    samples = out / "tiles_samples"
    w.run(
        "tile_samples",
        ["-m", "slides", "tile", SAMPLE.parent, "--out", samples, "--slide-mpp", "0.5"],
    )
    n_samples = len(list(samples.glob("*.h5")))
    check(n_samples == 2, f"{samples}: {n_samples} coords files for the 2 shipped slides")
    again = w.run("tile_again", ["-m", "slides", "tile", listing, "--out", tiles, *common])
    check("2 already done" in again, f"re-run did not skip finished slides:\n{again[-500:]}")

    # 3. training from the TRIDENT job's coords: demo base (no --config), tiny overrides
    runs = out / "runs"
    text = w.run(
        "train",
        [
            "-m",
            "vitkd.train",
            *TINY,
            "--data.source.slides",
            f"[{listing}]",
            "--data.source.coords",
            trident,
            "--trainer.default_root_dir",
            runs,
        ],
    )
    summaries = list(runs.rglob("summary.json"))
    check(len(summaries) == 1, f"expected one summary.json under {runs}, found {summaries}")
    run = summaries[0].parent
    summary = read_json(summaries[0], ["steps", "loss_start", "loss_end", "fidelity_after"])
    check(summary["steps"] == 3, f"summary steps {summary['steps']} != 3")
    for name in ("config.yaml", "metrics.csv", "export/model.safetensors", "teacher/config.json"):
        check((run / name).is_file(), f"{run}/{name} was not written")
    check("fidelity" in text.lower(), "no fidelity table at the end of the run")
    ckpts = sorted(run.rglob("last.ckpt"))
    check(len(ckpts) == 1, f"expected one last.ckpt under {run}, found {ckpts}")
    ckpt = ckpts[0]

    # 4. export
    student = out / "my-student"
    w.run("export", ["-m", "vitkd.export", ckpt, "--out", student])
    config = read_json(student / "config.json", ["architecture", "model_args", "pretrained_cfg"])
    check((student / "model.safetensors").is_file(), "export wrote no model.safetensors")
    check(config["pretrained_cfg"]["input_size"][-1] == TILE, "export input size")

    # 5. embeddings: student (export) and teacher (the run's copy), on the tiling's coords
    emb = {"student": out / "emb_student", "teacher": out / "emb_teacher"}
    models = {"student": student, "teacher": run / "teacher"}
    dims = {"student": 32, "teacher": 48}
    features: dict[str, dict[str, np.ndarray]] = {}
    for who in ("student", "teacher"):
        w.run(
            f"embed_{who}",
            [
                "-m",
                "vitkd.embed",
                listing,
                "--model",
                models[who],
                "--out",
                emb[who],
                "--coords",
                tiles,
                "--batch-size",
                "64",
                "--workers",
                "0",
            ],
        )
        check((emb[who] / "embed_log.jsonl").is_file(), f"{emb[who]}: no embed_log.jsonl")
        features[who] = {
            stem: check_features(emb[who] / f"{stem}.h5", dims[who], c)
            for stem, c in coords.items()
        }
    encoders = {}
    for who, folder in emb.items():
        with h5py.File(folder / f"{SAMPLE.stem}.h5", "r") as h5:
            encoders[who] = str(h5["features"].attrs["encoder"])
    check(encoders["student"] != "my-student", f"encoder is the folder name: {encoders}")
    check(encoders["student"] != encoders["teacher"], f"same encoder name: {encoders}")
    # the generated slide under a second "scanner": same tissue, other compression
    plism_in = out / "emb_conditions"
    for condition, slide in (("jpeg", generated), ("zlib", twin)):
        w.run(
            f"embed_condition_{condition}",
            [
                "-m",
                "vitkd.embed",
                slide,
                "--model",
                student,
                "--out",
                plism_in / condition,
                "--coords",
                tiles / f"{generated.stem}.h5",
                "--workers",
                "0",
            ],
        )

    # 6. evaluation on what was produced
    labels = out / "labels.csv"
    rng = np.random.default_rng(0)
    with labels.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["slide", "x", "y", "label", "split"])
        for stem, c in coords.items():
            middle = np.median(c[:, 0])
            for x, y in c:
                split = "test" if rng.random() < 0.3 else "train"
                writer.writerow([stem, x, y, "left" if x < middle else "right", split])
    ev = out / "eval"
    w.run(
        "probe",
        [
            "-m",
            "evaluation",
            "probe",
            "--embeddings",
            emb["student"],
            "--labels",
            labels,
            "--max-steps",
            "60",
            "--seeds",
            "0",
            "--out",
            ev / "probe",
        ],
    )
    probes = check_eval_out(ev / "probe", ["probes", "data"])["probes"]
    check({"linear", "logistic", "knn"} <= set(probes), f"probes run: {sorted(probes)}")
    check(probes["linear"]["monitor_split"] != "test", "the linear probe watched the test split")
    w.run(
        "fidelity",
        [
            "-m",
            "evaluation",
            "fidelity",
            "--student",
            emb["student"],
            "--teacher",
            emb["teacher"],
            "--out",
            ev / "fidelity",
        ],
    )
    fidelity = check_eval_out(ev / "fidelity", ["fidelity"])["fidelity"]
    check(fidelity.get("n_tiles") == sum(map(len, coords.values())), f"fidelity: {fidelity}")
    check(0.0 <= fidelity["linear_cka"] <= 1.0 + 1e-6, f"fidelity CKA {fidelity['linear_cka']}")

    # robustness index: the two slides as two "centres", left/right halves as the biology
    manifest = out / "manifest.csv"
    arrays = {who: [] for who in features}
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "label", "centre", "slide_id"])
        row = 0
        for stem, c in coords.items():
            middle_x, middle_y = np.median(c[:, 0]), np.median(c[:, 1])
            for x, y in c:
                label = "left" if x < middle_x else "right"
                part = "top" if y < middle_y else "bottom"
                writer.writerow([row, label, stem, f"{stem}-{label}-{part}"])
                row += 1
            for who in features:
                arrays[who].append(features[who][stem])
    given = []
    for who, parts in arrays.items():
        path = out / f"ri_{who}.npy"
        np.save(path, np.concatenate(parts))
        given.append(f"{who}={path}")
    w.run(
        "robustness_index",
        [
            "-m",
            "evaluation",
            "robustness-index",
            "--embeddings",
            *given,
            "--manifest",
            manifest,
            "--k",
            "5",
            "--curve-k",
            "10",
            "--n-bootstrap",
            "20",
            "--out",
            ev / "robustness_index",
        ],
    )
    ri = check_eval_out(ev / "robustness_index", ["encoders", "differences"])["encoders"]
    check(set(ri) == {"student", "teacher"}, f"robustness-index encoders: {sorted(ri)}")
    for who, metrics in ri.items():
        check({"ri", "mari", "croma"} <= set(metrics), f"{who}: metrics {sorted(metrics)}")
        check(metrics["ri"]["k"] == 5, f"{who}: RI k {metrics['ri']['k']}")
    w.run("plism", ["-m", "evaluation", "plism", plism_in, "--out", ev / "plism"])
    plism = check_eval_out(ev / "plism", ["leaderboard", "leaderboard_note", "n_tiles"])
    check(plism["n_tiles"] == len(coords[generated.stem]), f"plism tiles {plism['n_tiles']}")
    check(
        plism["leaderboard"] is not None or bool(plism["leaderboard_note"]),
        "plism: no leaderboard score and no note saying why",
    )
    w.run(
        "robustness",
        [
            "-m",
            "evaluation",
            "robustness",
            "--teacher-model",
            run / "teacher",
            "--student-model",
            student,
            "--size",
            str(TILE),
            "--max-tiles",
            "8",
            "--stains",
            "2",
            "--scanners",
            "2",
            "--out",
            ev / "robustness",
        ],
    )
    models = check_eval_out(ev / "robustness", ["models", "n_tiles"])["models"]
    check(set(models) == {"teacher", "student"}, f"robustness models: {sorted(models)}")
    report = out / "report"
    w.run(
        "report",
        [
            "-m",
            "evaluation",
            "report",
            ev / "robustness",
            ev / "probe",
            ev / "fidelity",
            ev / "robustness_index",
            ev / "plism",
            run,
            "--out",
            report,
        ],
    )
    for name in ("index.html", "report.md"):
        check((report / name).is_file(), f"report wrote no {name}")

    # 7. bad input: one line, status 2, naming what is wrong
    noise = w.bad_input(
        "bad_train_weights",
        ["-m", "vitkd.train", "--model.teacher.weights", out / "nope.bin"],
        2,
        "nope.bin",
    )
    if noise:
        print(f"     ({len(noise)} stderr line(s) before the error: {noise})", flush=True)
    text = w.run("bad_train_key", ["-m", "vitkd.train", "--trainer.max_step", "5"], expect=None)
    check("--trainer.max_step" in text, "an abbreviated key was not named as an error")
    w.bad_input(
        "bad_embed_slide",
        ["-m", "vitkd.embed", out / "nope.svs", "--model", student, "--out", out / "x"],
        2,
        "nope.svs",
    )
    w.bad_input(
        "bad_probe_labels",
        [
            "-m",
            "evaluation",
            "probe",
            "--embeddings",
            emb["student"],
            "--labels",
            out / "no.csv",
            "--out",
            out / "x",
        ],
        2,
        "no.csv",
    )
    w.bad_input(
        "bad_tile_slide",
        ["-m", "slides", "tile", out / "nope.svs", "--out", out / "x"],
        1,  # slides' documented status for a slide error (tests/slides/test_tile_cli.py)
        "nope.svs",
    )
    return w.steps


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and walk; exit 0 when every step passed, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per command (900)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="vitkd_walkthrough_"))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        steps = walk(out.resolve(), args.timeout)
    except (StepFailed, subprocess.TimeoutExpired) as err:
        print(f"walkthrough: FAILED: {err}\n(work folder and logs: {out})", file=sys.stderr)
        return 1
    print(f"walkthrough: ok, {steps} steps in {time.perf_counter() - start:.0f} s ({out})")
    if args.out is None and not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
