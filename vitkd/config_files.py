"""Shipped YAML configs, found in an installed wheel (``vitkd/configs``) or in a source checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[1] / "configs"


def config_dir() -> Path:
    """The folder holding ``demo.yaml``, ``h0mini.yaml``, ...: the wheel's, else the clone's."""
    try:
        # vitkd.configs is a data-only (namespace) package: join a file to get a real path
        demo = Path(str(resources.files("vitkd.configs").joinpath("demo.yaml")))
    except ModuleNotFoundError:  # a clone, pip-installed editable or not installed at all
        return _CHECKOUT
    return demo.parent if demo.is_file() else _CHECKOUT


def config_path(name: str) -> Path:
    """Path of a shipped config by file name, e.g. ``config_path("demo.yaml")``."""
    path = config_dir() / name
    if not path.is_file():
        shipped = sorted(p.name for p in config_dir().glob("*.yaml"))
        raise FileNotFoundError(f"no shipped config {name!r} in {config_dir()}; have {shipped}")
    return path
