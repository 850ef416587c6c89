"""``chatapp models list`` in an 80-column terminal shows every column of every model.

At 80 columns the fit and Korean columns used to be cut to ``fi…`` and ``…`` and the default
marker dropped. Run through the real executable with COLUMNS=80, next to a model added under a
long name (the one column allowed to wrap).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rich.cells import cell_len

from chatapp.models.registry import add_local_model
from tests.support.tiny_gguf import write_tiny_gguf

CHATAPP = Path(sys.executable).with_name("chatapp")
LONG_NAME = "meta-llama-3.1-8b-instruct-abliterated-q4-k-m-from-a-friend"


def _chatapp(*args: str, columns: int, home: Path) -> str:
    done = subprocess.run(
        [str(CHATAPP), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CHATAPP_HOME": str(home), "COLUMNS": str(columns)},
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_every_column_fits_80_columns(chatapp_home: Path, tmp_path: Path) -> None:
    add_local_model(write_tiny_gguf(tmp_path / "friend.gguf"), name=LONG_NAME)
    rows = json.loads(_chatapp("models", "list", "--json", columns=80, home=chatapp_home))
    rows = rows["models"]
    out = _chatapp("models", "list", columns=80, home=chatapp_home)
    lines = out.splitlines()
    assert max(cell_len(line) for line in lines) <= 80, out
    assert "…" not in out, out
    assert lines[0].split() == ["name", "status", "quant", "size", "RAM", "fit", "ctx", "ko"]
    fits = [word for line in lines[1:] for word in line.split() if word in ("fits", "tight")]
    fits += ["too big"] * out.count("too big")
    assert len(fits) == sum(1 for r in rows if r["fit"]), out
    assert out.count("한") == sum(1 for r in rows if r["korean"]), out
    default = next(r["name"] for r in rows if r["default"])
    assert f"{default} *" in out
    # The long name wraps inside its column; it is all there, in order.
    assert LONG_NAME in "".join(line[: line.find(" ")] if " " in line else line for line in lines)


def test_a_wide_terminal_keeps_one_line_per_model(chatapp_home: Path) -> None:
    rows = json.loads(_chatapp("models", "list", "--json", columns=120, home=chatapp_home))
    out = _chatapp("models", "list", columns=120, home=chatapp_home)
    table = out.split("* default")[0].splitlines()
    assert len(table) == 1 + len(rows["models"])
