"""The ``chatapp`` command line is assembled from plain imports of its command modules.

Building it must stay light (the heavy libraries load inside the commands that need them), and
every module under ``chatapp/cli`` that defines commands must be part of it.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import typer
import typer.main

import chatapp.cli
from chatapp.cli import build_app

HEAVY = ("torch", "chromadb", "llama_cpp", "textual", "sentence_transformers", "numpy", "kiwipiepy")


def _command_names(app: typer.Typer) -> set[str]:
    group = typer.main.get_command(app)
    return set(getattr(group, "commands", {}))


def test_building_the_cli_imports_no_heavy_library() -> None:
    probe = (
        "import sys; from chatapp.cli import build_app; build_app(); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == ""


def test_every_command_module_is_registered() -> None:
    assembled = _command_names(build_app())
    for info in pkgutil.iter_modules(chatapp.cli.__path__):
        module = importlib.import_module(f"chatapp.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is None:
            continue
        alone = typer.Typer()
        alone.command("placeholder-x")(lambda: None)  # a group even with one command
        register(alone)
        missing = _command_names(alone) - {"placeholder-x"} - assembled
        assert not missing, f"chatapp.cli.{info.name} defines {missing}, not in build_app()"
