"""The ``reasonembed-rag`` command-line package: every module imports on its own, every sub-command is wired in and
answers ``--help``, and ``python -m reasonembed_rag.cli`` is the same program. Fast: no model is loaded."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import reasonembed_rag.cli
from reasonembed_rag.cli import build_parser, main

COMMANDS = ("models", "embed", "index", "search", "bright", "robustness", "demo")


def test_every_cli_module_imports():
    """Each module alone, so a cycle that only breaks when a module is imported first shows up by name."""
    names = sorted(info.name for info in pkgutil.iter_modules(reasonembed_rag.cli.__path__) if info.name != "__main__")
    assert {"common", "embed", "store", "bright", "robustness", "demo"} <= set(names), names
    for name in names:
        code = f"import reasonembed_rag.cli.{name}"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{code} failed:\n{result.stderr[-2000:]}"


def test_the_parser_has_every_command():
    commands = next(action for action in build_parser()._actions if action.dest == "command")
    assert tuple(commands.choices) == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_answers_help(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: reasonembed-rag {command} ")


def test_python_dash_m_runs_the_same_program(capsys):
    result = subprocess.run(
        [sys.executable, "-m", "reasonembed_rag.cli", "models"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "minilm-l6" in listing and result.stdout == listing
