"""The wheel: configs and the sample slide inside, console scripts, one version, every package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import vitkd

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # no build isolation: offline, with the setuptools already installed
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*cmd, "-w", str(out), str(ROOT)], check=True, capture_output=True)
    (path,) = out.glob("vitkd-*.whl")
    return path


def test_wheel_ships_configs_sample_and_scripts(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = f"vitkd-{vitkd.__version__}.dist-info"
        scripts = z.read(f"{info}/entry_points.txt").decode()
        metadata = z.read(f"{info}/METADATA").decode()
    assert "vitkd/configs/demo.yaml" in names
    assert {p.name for p in (ROOT / "configs").glob("*.yaml")} <= {
        Path(n).name for n in names if n.startswith("vitkd/configs/")
    }
    assert "slides/samples/CMU-1-Small-Region.svs" in names
    assert "slides/samples/TCGA-CR-7395-01A-01-TS1.svs" in names
    for part in ("model.safetensors", "config.json", "PROVENANCE.md"):
        assert f"vitkd/demo_teacher/{part}" in names  # `builtin:demo-teacher` of the demo
    for script in ("vitkd-train", "vitkd-embed", "slides-tile", "vitkd-eval"):
        assert f"{script} = " in scripts
    assert f"Version: {vitkd.__version__}\n" in metadata
    assert "License-Expression: Apache-2.0" in metadata
    for dep in ("opencv-python-headless", "typing_extensions", "filelock"):
        assert f"Requires-Dist: {dep}" in metadata


def test_demo_config_resolves_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    code = "from vitkd.config_files import config_path; print(config_path('demo.yaml'))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "PATH": ""},
        check=True,
        capture_output=True,
        text=True,
    )
    assert Path(done.stdout.strip()) == site / "vitkd" / "configs" / "demo.yaml"


def test_every_package_folder_is_listed() -> None:
    tomllib = pytest.importorskip("tomllib")
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("slides", "vitkd", "evaluation")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages"


def test_config_path_names_what_exists() -> None:
    from vitkd.config_files import config_path

    assert config_path("demo.yaml").read_text().strip()
    with pytest.raises(FileNotFoundError, match=r"demo\.yaml"):
        config_path("nope.yaml")
