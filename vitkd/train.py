"""`python -m vitkd.train`: LightningCLI for distillation; with no arguments, the embedded demo."""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings

import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import vitkd  # noqa: F401  (offline environment first)
from slides import SlideError
from vitkd.config_files import config_path
from vitkd.data.datamodule import DistillDataModule
from vitkd.distill.cpu_guard import SlowCPURunError, check_cpu_run
from vitkd.distill.initialisation import save_initialisation
from vitkd.distill.module import DistillationModule
from vitkd.distill.summary import RunSummary
from vitkd.models.builtin import WeightsNotGivenError, check_model_weights
from vitkd.models.presets import UnknownModelError
from vitkd.models.weights import WeightsMismatchError, WeightsNotFoundError

DEFAULT_RUNS = "runs"
DEMO_CONFIG = config_path("demo.yaml")  # the wheel's vitkd/configs, or the clone's configs/


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def trainer_defaults(run_name: str = "vitkd") -> dict:
    """Defaults: bf16-mixed on CUDA / fp32 on CPU, CSV (+ TensorBoard if installed) logs.

    Both loggers share one run folder `runs/<name>/<timestamp>`; CSV comes first so the folder
    is empty when it is created (it warns otherwise) and so `trainer.log_dir` is that folder.
    """
    version = time.strftime("%Y%m%d-%H%M%S")
    loggers = [
        {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": DEFAULT_RUNS, "name": run_name, "version": version},
        }
    ]
    if _has_tensorboard():
        loggers.append(
            {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": DEFAULT_RUNS, "name": run_name, "version": version},
            },
        )
    return {
        "precision": "bf16-mixed" if torch.cuda.is_available() else "32-true",
        "default_root_dir": DEFAULT_RUNS,
        "logger": loggers,
        # always on, in addition to any `trainer.callbacks` of a config
        "callbacks": [
            RunSummary(),
            ModelCheckpoint(save_last=True, every_n_train_steps=1000),
        ],
        "log_every_n_steps": 1,
    }


class DistillCLI(LightningCLI):
    """LightningCLI without subcommands: parse, build, then `trainer.fit` (plus `--ckpt_path`)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--ckpt_path", type=str | None, default=None, help="resume from this checkpoint"
        )
        parser.add_argument(
            "--save_init",
            type=str | None,
            default=None,
            help="also write the student before training (the step-0 weights, which depend on "
            "model.seed and the student config only) as an export to this folder: the common "
            "initialisation of branches to merge with python -m vitkd.merge",
        )
        parser.add_argument(
            "--allow_slow_cpu",
            type=bool,
            default=False,
            help="start even when one step would take over a minute on this CPU (full-size "
            "models); without it such a run is refused with its estimate",
        )

    def before_instantiate_classes(self) -> None:
        # before any model is built: missing weights are one line, not a 45 s build first
        model = _plain(self.config["model"])
        teacher, student = model.get("teacher") or {}, model.get("student") or {}
        check_model_weights(
            teacher.get("weights"),
            str(teacher.get("name")),
            student.get("weights"),
            model.get("targets") == "self",
        )
        # a full-size pair on the CPU is refused with its estimate
        trainer = self.config["trainer"]
        accelerator = str(trainer.get("accelerator") or "auto")
        if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
            # Lightning says so only after the models are built
            raise MisconfigurationException(
                f"trainer.accelerator={accelerator} but torch sees no CUDA device here; use "
                "--trainer.accelerator cpu (small models) or run on a GPU machine"
            )
        if accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available()):
            est = check_cpu_run(
                model,
                _plain(self.config["data"]),
                int(trainer.get("max_steps") or -1),
                bool(self.config.get("allow_slow_cpu")),
            )
            logging.getLogger("vitkd").info(
                "CPU run: %.2f TFLOP per step, at least %.1f s per step here",
                est.flops / 1e12,
                est.seconds,
            )
        # one knob for where a run goes: loggers left at the default folder follow
        # --trainer.default_root_dir, so logs, checkpoints, export and summary stay together
        trainer = self.config["trainer"]
        loggers = trainer.get("logger")
        for logger in loggers if isinstance(loggers, list) else []:
            init_args = logger.get("init_args") if hasattr(logger, "get") else None
            if init_args is not None and init_args.get("save_dir") == DEFAULT_RUNS:
                init_args["save_dir"] = trainer.get("default_root_dir") or DEFAULT_RUNS


def _plain(value: object) -> dict:
    """A jsonargparse Namespace section as nested plain dicts."""
    return value.as_dict() if hasattr(value, "as_dict") else dict(value or {})


def _gives_config(args: list[str]) -> bool:
    return any(a == "--config" or a.startswith("--config=") for a in args)


def main(args: list[str] | None = None) -> DistillCLI:
    """Run the CLI. Without `--config`, the embedded demo is the base that other options change."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # the frozen teacher is in eval mode on purpose
    warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode", UserWarning)
    # `args` is always given (the demo is prepended), so Lightning's hint about args and
    # sys.argv both being set is noise in every shell run
    warnings.filterwarnings("ignore", r"LightningCLI's args parameter", UserWarning)
    given = sys.argv[1:] if args is None else list(args)
    if not _gives_config(given):
        # `--trainer.max_steps 5` alone must still train the demo, not the full-size defaults
        logging.getLogger("vitkd").info(
            "no --config: running the embedded demo (%s)%s",
            DEMO_CONFIG,
            " with the options given" if given else "",
        )
        given = ["--config", str(DEMO_CONFIG), *given]
    cli = DistillCLI(
        DistillationModule,
        DistillDataModule,
        trainer_defaults=trainer_defaults(),
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        # an abbreviated key (--trainer.max_step) is an error naming it, never a guess
        parser_kwargs={
            "description": __doc__,
            "allow_abbrev": False,
            "prog": "python -m vitkd.train",
        },
        args=given,
        run=False,
        auto_configure_optimizers=False,
    )
    if cli.config.get("save_init") and cli.trainer.global_rank == 0:
        out = save_initialisation(cli.model, cli.config["save_init"])
        logging.getLogger("vitkd").info("wrote the step-0 student to %s", out)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.get("ckpt_path"))
    return cli


# what a user can fix: shown as one line, without a traceback (VITKD_DEBUG=1 shows it)
USER_ERRORS = (
    WeightsNotFoundError,
    WeightsNotGivenError,
    WeightsMismatchError,
    SlowCPURunError,
    SlideError,
    UnknownModelError,
    MisconfigurationException,  # e.g. `accelerator: gpu` on a machine without one
)


def cli_main(args: list[str] | None = None) -> int:
    """`main` for a shell: user errors are one line on stderr and exit status 2."""
    try:
        main(args)
    except USER_ERRORS as err:
        if os.environ.get("VITKD_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
