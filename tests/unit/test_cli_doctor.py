"""``chatapp doctor``: a full report in-process, and problems reported instead of raised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatapp.cli import main


def run_doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(["doctor", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_report_covers_build_model_dirs_and_versions(
    capsys: pytest.CaptureFixture[str], chatapp_home: Path
) -> None:
    code, out, _ = run_doctor(capsys, "--json")
    assert code == 0
    report = json.loads(out)
    llama = report["llama_cpp"]
    assert llama["llama_cpp_python"] == report["packages"]["llama-cpp-python"]
    assert "CPU" in llama["backends"] and llama["cpu_features"]
    assert report["machine"]["usable_cores"] >= 1
    assert report["engine"]["n_threads"] == report["machine"]["usable_cores"]
    model = report["model"]
    assert model["found"] is True and model["name"] == "smollm2-135m"
    assert model["quant"] == "Q4_1" and model["n_ctx"] == 4096 and model["chat_template"]
    expected_gpu_layers = model["layers"] if llama["gpu_offload"] else 0
    assert model["layers_on_gpu"] == expected_gpu_layers
    assert report["dirs"]["data"].startswith(str(chatapp_home))


def test_text_report(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_doctor(capsys)
    assert code == 0
    for heading in ("machine", "llama.cpp", "engine", "model", "dirs", "packages"):
        assert f"\n{heading}\n" in out
    assert "GPU backend:" in out and "smollm2-135m: found at" in out


def test_missing_model_is_reported_not_raised(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "gone.gguf"
    monkeypatch.setenv("CHATAPP_MODEL__NAME", str(missing))
    code, out, _ = run_doctor(capsys)
    assert code == 0
    assert f"{missing}: not usable (model {missing}: no such file)" in out


def test_broken_config_is_reported_and_defaults_used(
    capsys: pytest.CaptureFixture[str], chatapp_home: Path
) -> None:
    config = chatapp_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[model\n")
    code, out, _ = run_doctor(capsys)
    assert code == 0
    assert "settings problem:" in out and "config.toml" in out
    assert "smollm2-135m: found at" in out
