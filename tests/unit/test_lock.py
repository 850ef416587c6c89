"""requirements.lock pins everything a fresh install gets, and the Makefile installs with it.

A fresh ``make run`` once got typer 0.29 (which carries its own click) where the suite had run
on an older typer: every package chatapp needs, directly or not, must be pinned, so a release
installs what CI tested.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"


def required_distributions(
    root: str = "chatapp", extras: frozenset[str] = frozenset({"dev", "server"})
) -> dict[str, metadata.Distribution]:
    """Every installed distribution ``root[extras]`` requires, walked recursively (with the
    extras each requirement asks for, and environment markers evaluated here)."""
    found: dict[str, tuple[metadata.Distribution, frozenset[str]]] = {}
    todo = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement whose marker excludes it here is never installed
        seen = found.get(key)
        if seen is not None and wanted <= seen[1]:
            continue
        wanted = wanted | (seen[1] if seen else frozenset())
        found[key] = (dist, wanted)
        for line in dist.requires or []:
            req = Requirement(line)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(e) for e in environments):
                continue
            todo.append((req.name, frozenset(req.extras)))
    found.pop(canonicalize_name(root))
    return {key: dist for key, (dist, _) in found.items()}


def locked_versions() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        assert match, f"requirements.lock: {line!r} is not NAME==VERSION"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_every_installed_dependency_is_pinned_at_the_installed_version() -> None:
    pins = locked_versions()
    required = required_distributions()
    assert {"typer", "llama-cpp-python", "torch", "pytest"} <= set(required)
    unpinned = sorted(name for name in required if name not in pins)
    assert not unpinned, f"not in requirements.lock (run `make lock`): {unpinned}"
    # A pin without a local label (torch==2.13.0) matches the installed 2.13.0+cpu.
    differ = {
        name: (pins[name], dist.version)
        for name, dist in required.items()
        if Version(pins[name]) != Version(Version(dist.version).public)
    }
    assert not differ, f"requirements.lock differs from this venv (locked, installed): {differ}"


def test_the_hand_pins_hold_in_the_lock() -> None:
    pins = locked_versions()
    assert "chatapp" not in pins
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            locked = pins.get(canonicalize_name(req.name))
            assert locked is not None and req.specifier.contains(locked), (line, locked)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_installs_with_the_lock() -> None:
    # -n: print what `make` would run for a fresh venv, without running it.
    done = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), ".venv/.stamp-dev"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    installs = [line for line in done.stdout.splitlines() if " install " in line]
    assert len(installs) >= 3
    assert all("-c requirements.lock" in line for line in installs), installs
