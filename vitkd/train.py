"""`python -m vitkd.train`: LightningCLI for distillation; with no arguments, the embedded demo."""

from __future__ import annotations

import logging
import sys
import time
import warnings

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import vitkd  # noqa: F401  (offline environment first)
from vitkd.config_files import config_path
from vitkd.data.datamodule import DistillDataModule
from vitkd.distill.module import DistillationModule
from vitkd.distill.summary import RunSummary

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

    def before_instantiate_classes(self) -> None:
        # one knob for where a run goes: loggers left at the default folder follow
        # --trainer.default_root_dir, so logs, checkpoints, export and summary stay together
        trainer = self.config["trainer"]
        loggers = trainer.get("logger")
        for logger in loggers if isinstance(loggers, list) else []:
            init_args = logger.get("init_args") if hasattr(logger, "get") else None
            if init_args is not None and init_args.get("save_dir") == DEFAULT_RUNS:
                init_args["save_dir"] = trainer.get("default_root_dir") or DEFAULT_RUNS


def main(args: list[str] | None = None) -> DistillCLI:
    """Run the CLI; with no arguments, run the demo config."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # the frozen teacher is in eval mode on purpose
    warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode", UserWarning)
    given = sys.argv[1:] if args is None else list(args)
    if not given:
        logging.getLogger("vitkd").info(
            "no arguments: running the embedded demo (%s) on the sample slide", DEMO_CONFIG
        )
        args = ["--config", str(DEMO_CONFIG)]
    cli = DistillCLI(
        DistillationModule,
        DistillDataModule,
        trainer_defaults=trainer_defaults(),
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": __doc__},
        args=args,
        run=False,
        auto_configure_optimizers=False,
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.get("ckpt_path"))
    return cli


if __name__ == "__main__":
    main()
