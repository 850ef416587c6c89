"""The local model registry and the `chatapp models` commands that need no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatapp import paths
from chatapp.cli import main
from chatapp.errors import ConfigError, ModelLoadError, ModelNotFoundError, UsageError
from chatapp.models.registry import (
    add_local_model,
    find_installed,
    installed_models,
    looks_like_path,
    registry_file,
    remove_model,
    resolve_model_path,
    split_spec,
)
from tests.support.tiny_gguf import write_tiny_gguf


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_tiny_gguf(tmp_path / "mine" / "Tiny-Model.gguf", name="Tiny Model")


def test_bundled_model_is_always_installed_first(bundled_gguf: Path) -> None:
    models = installed_models()
    assert models[0].name == "smollm2-135m" and models[0].source == "bundled"
    assert models[0].path == bundled_gguf and not models[0].missing
    assert resolve_model_path("smollm2-135m") == bundled_gguf


@pytest.mark.parametrize(
    ("spec", "is_path"),
    [
        ("./model.gguf", True),
        ("/abs/model.gguf", True),
        ("~/m.gguf", True),
        ("models/m.gguf", True),
        ("a/b/c", True),
        ("qwen2.5-1.5b-instruct", False),
        ("org/repo", False),
        ("org/repo:Q4_K_M", False),
        ("org/repo:file-Q8_0.gguf", False),
    ],
)
def test_spec_kinds(spec: str, is_path: bool) -> None:
    assert looks_like_path(spec) is is_path


def test_split_spec() -> None:
    assert split_spec("org/repo:Q8_0") == ("org/repo", "Q8_0")
    assert split_spec("name") == ("name", None)


def test_add_then_resolve_by_name_and_registry_is_written_atomically(tiny: Path) -> None:
    model = add_local_model(tiny)
    assert model.name == "tiny-model" and model.source == "added"
    assert resolve_model_path("tiny-model") == tiny.resolve()
    assert resolve_model_path("TINY-MODEL") == tiny.resolve()
    data = json.loads(registry_file().read_text(encoding="utf-8"))
    assert [m["name"] for m in data["models"]] == ["tiny-model"]
    leftovers = [p.name for p in registry_file().parent.iterdir() if p.name.startswith(".models.")]
    assert leftovers == []


def test_add_rejects_a_non_gguf_and_a_taken_name(tmp_path: Path, tiny: Path) -> None:
    junk = tmp_path / "notes.gguf"
    junk.write_text("hello", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        add_local_model(junk)
    assert not registry_file().exists()
    other = write_tiny_gguf(tmp_path / "other" / "Tiny-Model.gguf")
    add_local_model(tiny)
    with pytest.raises(UsageError, match="already used"):
        add_local_model(other)
    with pytest.raises(UsageError, match="bundled"):
        add_local_model(other, name="smollm2-135m")


def test_file_deleted_behind_our_back_is_listed_missing_and_resolving_says_so(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_local_model(tiny, name="gone")
    tiny.unlink()
    entry = find_installed("gone")
    assert entry is not None and entry.missing
    with pytest.raises(ModelLoadError) as caught:
        resolve_model_path("gone")
    assert "file is gone" in str(caught.value) and "models rm gone" in str(caught.value)
    code, out, _ = run_cli(["models", "list", "--json"], capsys)
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["models"]}
    assert rows["gone"]["status"] == "missing"
    code, _, err = run_cli(["models", "info", "gone"], capsys)
    assert code == 2
    assert_one_line_error(err, "file is gone", str(tiny))


def test_partial_downloads_are_never_listed_but_stray_files_are(tmp_path: Path) -> None:
    root = paths.models_dir()
    write_tiny_gguf(root / ".partial" / "org--repo--x.gguf")
    (root / ".partial" / "org--repo--y.gguf.part").write_bytes(b"GGUF\x03")
    write_tiny_gguf(root / "org" / "repo" / "Copied-By-Hand.gguf")
    names = [m.name for m in installed_models()]
    assert names == ["smollm2-135m", "copied-by-hand"]


def test_unknown_name_suggests_close_matches(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model_path("qwen2.5-1.5b")
    assert "did you mean" in str(caught.value) and "qwen2.5-1.5b-instruct" in str(caught.value)
    code, _, err = run_cli(["models", "use", "smolm2-135m"], capsys)
    assert code == 2
    assert_one_line_error(err, "unknown name", "smollm2-135m")
    code, _, err = run_cli(["models", "info", "zzzz-nothing-like-it"], capsys)
    assert code == 2
    assert_one_line_error(err, "unknown name", "chatapp models list")


def test_catalog_model_not_downloaded_says_how_to_get_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli(["models", "use", "exaone-3.5-2.4b-instruct"], capsys)
    assert code == 2
    assert_one_line_error(err, "not downloaded yet", "models pull exaone-3.5-2.4b-instruct")


def test_corrupt_registry_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    registry_file().write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"models\.json: corrupt"):
        installed_models()
    code, _, err = run_cli(["models", "list"], capsys)
    assert code == 2
    assert_one_line_error(err, str(registry_file()))


def test_use_sets_the_default_in_config_and_list_marks_it(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatapp.config import load_settings

    code, _, _ = run_cli(["models", "add", str(tiny), "--name", "mine"], capsys)
    assert code == 0
    code, out, _ = run_cli(["models", "use", "mine"], capsys)
    assert code == 0 and "mine" in out
    assert load_settings().model.name == "mine"
    code, out, _ = run_cli(["models", "list", "--json"], capsys)
    payload = json.loads(out)
    assert payload["default"] == "mine"
    assert [r["name"] for r in payload["models"] if r["default"]] == ["mine"]
    assert payload["models"][0]["name"] == "smollm2-135m"
    catalog_rows = [r for r in payload["models"] if r["source"] == "catalog"]
    assert catalog_rows and all(r["fit"] in ("fits", "tight", "too big") for r in catalog_rows)
    assert any(r["korean"] for r in catalog_rows) and not all(r["korean"] for r in catalog_rows)


def test_rm_never_removes_the_bundled_model_and_leaves_added_files(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["models", "rm", "smollm2-135m"], capsys)
    assert code == 2
    assert_one_line_error(err, "bundled model cannot be removed")
    add_local_model(tiny)
    removed = remove_model("tiny-model")
    assert removed.source == "added" and tiny.exists()
    assert find_installed("tiny-model") is None
    code, _, err = run_cli(["models", "rm", "tiny-model"], capsys)
    assert code == 2
    assert_one_line_error(err, "unknown name")


def test_add_of_a_non_gguf_via_cli_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["models", "add", str(tmp_path / "absent.gguf")], capsys)
    assert code == 2
    assert_one_line_error(err, "absent.gguf", "no such file")


def test_info_and_template_of_the_bundled_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["models", "info", "smollm2-135m", "--json"], capsys)
    assert code == 0
    info = json.loads(out)
    assert info["architecture"] == "llama" and info["quant"] == "Q4_1"
    assert info["context_length"] == 8192 and info["chat_template"] is True
    assert len(info["sha256"]) == 64 and 130e6 < info["parameters"] < 140e6
    code, out, err = run_cli(["models", "template", "smollm2-135m"], capsys)
    assert code == 0 and "own template" in err
    assert out.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert "Name three colours.<|im_end|>" in out
    assert out.rstrip("\n").endswith("<|im_start|>assistant")


def test_template_of_a_model_without_one_uses_the_architecture_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = write_tiny_gguf(tmp_path / "g.gguf", architecture="gemma3", name="gemma")
    code, out, err = run_cli(["models", "template", str(plain)], capsys)
    assert code == 0 and "fallback: gemma" in err
    assert "<start_of_turn>user" in out and out.rstrip("\n").endswith("<start_of_turn>model")
