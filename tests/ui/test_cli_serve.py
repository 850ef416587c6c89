"""``chatapp serve`` bad input and ``chatapp install-desktop``."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from chatapp.cli import main
from chatapp.cli.serve import launcher_text
from chatapp.ui.browser import is_loopback


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_serve_refuses_a_port_in_use(capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, _, err = run_cli(["serve", "--port", str(port)], capsys)
    assert code == 2
    assert err.startswith(f"error: address 127.0.0.1:{port}: cannot listen there")
    assert "Traceback" not in err


@pytest.mark.parametrize("port", ["0", "70000"])
def test_serve_refuses_impossible_ports(capsys, port: str) -> None:
    code, _, err = run_cli(["serve", "--port", port], capsys)
    assert code == 2
    assert f"error: port {port}: must be between 1 and 65535" in err


def test_serve_refuses_an_unknown_host(capsys) -> None:
    code, _, err = run_cli(["serve", "--host", "no-such-host.invalid", "--port", "8765"], capsys)
    assert code == 2
    assert "error: host 'no-such-host.invalid': not an address this machine has" in err


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_install_desktop_writes_launcher_and_icons(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    code, out, err = run_cli(["install-desktop"], capsys)
    assert code == 0, err
    share = tmp_path / "share"
    desktop = share / "applications" / "chatapp.desktop"
    svg = share / "icons" / "hicolor" / "scalable" / "apps" / "chatapp.svg"
    png = share / "icons" / "hicolor" / "256x256" / "apps" / "chatapp.png"
    assert desktop.exists() and svg.exists() and png.exists()
    assert str(desktop) in out
    entry = desktop.read_text(encoding="utf-8")
    assert "Terminal=true" in entry and "Icon=chatapp" in entry
    exec_line = next(line for line in entry.splitlines() if line.startswith("Exec="))
    assert Path(exec_line.removeprefix("Exec=")).is_absolute()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert svg.read_text(encoding="utf-8").lstrip().startswith("<svg")
    if shutil.which("desktop-file-validate"):
        result = subprocess.run(
            ["desktop-file-validate", str(desktop)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_install_desktop_into_an_unwritable_place_says_so(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    code, _, err = run_cli(["install-desktop"], capsys)
    assert code == 2
    assert err.startswith(f"error: desktop entry: cannot write under {blocker}")


def test_launcher_text_quotes_paths_with_spaces() -> None:
    text = launcher_text("[Desktop Entry]\nExec=chatapp\nTryExec=chatapp\n", "/opt/my apps/chatapp")
    assert 'Exec="/opt/my apps/chatapp"' in text
    assert "TryExec=/opt/my apps/chatapp" in text
