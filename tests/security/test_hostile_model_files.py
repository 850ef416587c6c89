"""A model file is code and data from whoever made it. Its chat template (Jinja2 inside the GGUF)
may loop for hours or ask for gigabytes: ``models info`` and ``ask`` stop it at the render
limits and use the family's built-in format, saying so. A "model" that is a named pipe is
refused at once (it hung ``models add`` and ``ask --model`` until something wrote to it), and
a path with escape sequences in it is printed escaped in the one-line error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.security.conftest import chatapp_env, run_chatapp, run_on_terminal, stored_state
from tests.support.tiny_gguf import write_scripted_gguf, write_tiny_gguf

CHATML_BODY = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
HOSTILE_TEMPLATES = {
    # Two nested loops of 10^5: 10^10 empty iterations (ran past 60 s, and on for hours).
    "nested-loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
    "{% endfor %}" + CHATML_BODY,
    # 3 GB of 'A' (6.1 GB of memory, then a MemoryError traceback).
    "huge-string": "{{ 'A' * 3000000000 }}" + CHATML_BODY,
    # Doubling a string 40 times (a terabyte) without any operator the sandbox watched.
    "doubling": "{% set ns = namespace(s='AAAA') %}{% for c in 'x' * 40 %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}" + CHATML_BODY,
}


def llama_env(home: Path) -> dict[str, str]:
    env = chatapp_env(home)
    env["CHATAPP_BACKEND__KIND"] = "llama_cpp"
    return env


@pytest.mark.parametrize("template", HOSTILE_TEMPLATES.values(), ids=HOSTILE_TEMPLATES.keys())
def test_models_info_stops_a_hostile_chat_template(tmp_path: Path, template: str) -> None:
    model = write_tiny_gguf(tmp_path / "hostile.gguf", name="hostile", chat_template=template)
    started = time.monotonic()
    run = run_chatapp(tmp_path / "home", "models", "info", str(model), timeout=60)
    seconds = time.monotonic() - started
    assert run.code == 0, run.err
    assert "Traceback" not in run.err and "MemoryError" not in run.err
    assert "over the render limits" in run.err and "chatml chat format" in run.err, run.err
    assert seconds < 30, f"models info took {seconds:.0f} s"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nested-loops", "huge-string"])
def test_ask_with_a_hostile_chat_template_answers_in_the_family_format(
    chatapp_home: Path, tmp_path: Path, bundled_gguf: Path, kind: str
) -> None:
    """Loading the model does not compile its template either (llama-cpp-python's handlers
    did, folding ``'A' * 3000000000`` into 6 GB before the first token)."""
    model = write_scripted_gguf(
        tmp_path / "hostile.gguf",
        tokenizer_from=bundled_gguf,
        chat_template=HOSTILE_TEMPLATES[kind],
        paths=[["\n", "Hello", "!"]],  # after ChatML's "<|im_start|>assistant\n"
    )
    env = llama_env(chatapp_home)
    started = time.monotonic()
    run = run_chatapp(chatapp_home, "ask", "--model", str(model), "hi", env=env, timeout=120)
    seconds = time.monotonic() - started
    assert run.code == 0, run.err
    assert run.out.strip() == "Hello!"
    assert "over the render limits" in run.err and "Traceback" not in run.err, run.err
    assert seconds < 60, f"ask took {seconds:.0f} s"


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    os.mkfifo(path)
    return path


def test_models_add_refuses_a_named_pipe(chatapp_home: Path, fifo: Path) -> None:
    run = run_chatapp(chatapp_home, "models", "add", str(fifo), timeout=30)
    run.assert_refused(2, str(fifo), "is a named pipe")
    assert not (chatapp_home / "data" / "models.json").exists()


def test_ask_refuses_a_named_pipe_as_its_model(chatapp_home: Path, fifo: Path) -> None:
    before = stored_state(chatapp_home)
    env = llama_env(chatapp_home)
    run = run_chatapp(chatapp_home, "ask", "--model", str(fifo), "hi", env=env, timeout=30)
    run.assert_refused(2, str(fifo), "is a named pipe")
    assert stored_state(chatapp_home) == before


def test_a_path_with_escape_sequences_is_printed_escaped(chatapp_home: Path) -> None:
    env = llama_env(chatapp_home)
    code, out = run_on_terminal(
        chatapp_home, "ask", "--model", "m\x1b]0;TITLE\x07.gguf", "hi", env=env
    )
    assert code == 2, out
    assert b"\x1b]0;TITLE" not in out, out
    assert b"error: model m\\x1b]0;TITLE\\x07.gguf: no such file" in out, out
