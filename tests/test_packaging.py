"""The wheel: everything installs under ``reasonembed_rag/``, the trained models ship inside, and an installed,
non-editable copy imports, resolves and loads them from any working directory.

The wheel is built once per session from a copy of the sources (pip + the environment's setuptools, offline, no
build isolation), so a stale ``build/`` folder in the checkout cannot slip deleted files into it, and installed with
``pip install --target`` into a folder that a subprocess puts first on its path.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from .source_layout import ROOT, SOURCE_FOLDERS

SHIPPED_MODEL = "reasonembed-smollm2-135m"
TRAINED_MODELS = ROOT / "reasonembed_rag" / "trained_models"


def _pip(*args: str | Path, cwd: Path | None = None) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"pip {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in SOURCE_FOLDERS:
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", dist, source)
    (built,) = dist.glob("reasonembed_rag-*.whl")
    return built


@pytest.fixture(scope="session")
def wheel_files(wheel) -> dict[str, int]:
    """Path inside the wheel -> uncompressed size."""
    with zipfile.ZipFile(wheel) as archive:
        return {info.filename: info.file_size for info in archive.infolist() if not info.is_dir()}


@pytest.fixture(scope="session")
def console_scripts(wheel) -> dict[str, str]:
    """The wheel's ``console_scripts`` entry points: command -> ``module:function``."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(name).decode())
    return dict(entry_points["console_scripts"])


@pytest.fixture(scope="session")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed, non-editable, into its own folder."""
    target = tmp_path_factory.mktemp("site")
    _pip("install", "--no-deps", "--no-index", "--target", target, wheel)
    return target


def _run_installed(target: Path, code: str, tmp_path: Path) -> dict:
    """Run ``code`` (which prints one JSON line last) with the installed copy first on the path, in an empty folder."""
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_wheel_installs_nothing_outside_the_package(wheel_files):
    top_level = {name.split("/")[0] for name in wheel_files}
    dist_info = {name for name in top_level if name.endswith(".dist-info")}
    assert len(dist_info) == 1 and top_level - dist_info == {"reasonembed_rag"}, sorted(top_level)


def test_wheel_holds_every_module_of_the_three_folders(wheel_files):
    """A sub-package missing from pyproject.toml's ``packages`` list would be left out silently."""
    expected = {
        f"{package.replace('.', '/')}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder, package in SOURCE_FOLDERS.items()
        for path in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    in_wheel = {name for name in wheel_files if name.endswith(".py")}
    assert expected - in_wheel == set(), sorted(expected - in_wheel)
    assert in_wheel - expected == set(), sorted(in_wheel - expected)
    assert "reasonembed_rag/training/remixer/prompts.json" in wheel_files
    assert "reasonembed_rag/py.typed" in wheel_files


def test_wheel_carries_the_trained_models(wheel_files):
    files = [path for path in (TRAINED_MODELS / SHIPPED_MODEL).rglob("*") if path.is_file()]
    weights = {"reasonembed_config.json", "adapter_config.json", "adapter_model.safetensors"}
    assert {path.name for path in files} >= weights, files
    for path in TRAINED_MODELS.rglob("*"):
        if path.is_file():
            name = f"reasonembed_rag/{path.relative_to(ROOT / 'reasonembed_rag').as_posix()}"
            assert wheel_files.get(name) == path.stat().st_size, f"{name} is missing from the wheel or differs"


def test_wheel_entry_points_point_into_the_package(console_scripts):
    assert set(console_scripts) == {"reasonembed-rag", "reasonembed-train"}
    assert all(value.startswith("reasonembed_rag.") for value in console_scripts.values()), console_scripts


def test_installed_copy_imports_from_its_own_folder(installed, console_scripts, tmp_path):
    """The package, its training and demo sub-packages, every console script and every project-trained model's
    folder resolve inside the install folder."""
    targets = list(console_scripts.values())
    code = (
        "import importlib, json\n"
        "import reasonembed_rag, reasonembed_rag.training.cli, reasonembed_rag.demos.compare\n"
        "from reasonembed_rag.models import REGISTRY, project_model_path, trained_models_dir\n"
        "files = [reasonembed_rag.__file__, reasonembed_rag.training.cli.__file__,\n"
        "         reasonembed_rag.demos.compare.__file__, str(trained_models_dir())]\n"
        "projects = [spec for spec in REGISTRY.values() if spec.source == 'project']\n"
        "assert len(projects) >= 1, projects\n"
        "files += [str(project_model_path(spec)) for spec in projects]\n"
        f"for target in {targets!r}:\n"
        "    module, _, function = target.partition(':')\n"
        "    files.append(importlib.import_module(module).__file__)\n"
        "    assert callable(getattr(importlib.import_module(module), function)), target\n"
        "print(json.dumps(files))\n"
    )
    files = _run_installed(installed, code, tmp_path)
    assert len(files) >= 5 + len(targets)
    for file in files:
        assert Path(file).resolve().is_relative_to(installed.resolve()), file


@pytest.mark.slow
def test_installed_copy_loads_the_shipped_model(installed, tmp_path):
    """Offline, from an unrelated working directory, the alias resolves inside the install folder and loads the
    same weights as the checkout (same vectors)."""
    texts = ["Find the sum of the roots of x^2 - 5x + 6 = 0.", "Vieta's formulas relate roots to coefficients."]
    code = (
        "import json\n"
        "from reasonembed_rag import ReasonEmbedEncoder\n"
        "from reasonembed_rag.models import REGISTRY, project_model_path\n"
        f"encoder = ReasonEmbedEncoder.from_pretrained({SHIPPED_MODEL!r})\n"
        f"queries = encoder.encode_queries({texts[:1]!r}, task='aops', show_progress=False)\n"
        f"documents = encoder.encode_documents({texts[1:]!r}, show_progress=False)\n"
        f"folder = str(project_model_path(REGISTRY[{SHIPPED_MODEL!r}]))\n"
        "print(json.dumps({'folder': folder, 'queries': queries.tolist(), 'documents': documents.tolist()}))\n"
    )
    payload = _run_installed(installed, code, tmp_path)
    assert Path(payload["folder"]).resolve().is_relative_to(installed.resolve()), payload["folder"]

    from reasonembed_rag import ReasonEmbedEncoder

    checkout = ReasonEmbedEncoder.from_pretrained(SHIPPED_MODEL)
    queries = checkout.encode_queries(texts[:1], task="aops", show_progress=False)
    documents = checkout.encode_documents(texts[1:], show_progress=False)
    np.testing.assert_allclose(np.array(payload["queries"], dtype=np.float32), queries, atol=1e-5)
    np.testing.assert_allclose(np.array(payload["documents"], dtype=np.float32), documents, atol=1e-5)
