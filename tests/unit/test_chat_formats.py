"""Chat templates: golden renders of every fallback family, the GGUF's own template, fallbacks."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from chatapp.domain import ChatMessage
from chatapp.engine.chat_families import FAMILIES
from chatapp.engine.chat_formats import (
    ChatTemplate,
    fallback_template,
    family_for,
    render_chat,
    select_template,
)
from chatapp.models.gguf import read_gguf_info

CONVERSATION = [
    ChatMessage("system", "Be brief."),
    ChatMessage("user", "Hi"),
    ChatMessage("assistant", "Hello!"),
    ChatMessage("user", "2+2?"),
]

GOLDEN = {
    "chatml": (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "llama3": (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "gemma": (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\n2+2?<end_of_turn>\n"
        "<start_of_turn>model\n"
    ),
    "phi": (
        "<|system|>\nBe brief.<|end|>\n"
        "<|user|>\nHi<|end|>\n"
        "<|assistant|>\nHello!<|end|>\n"
        "<|user|>\n2+2?<|end|>\n"
        "<|assistant|>\n"
    ),
    "mistral": "<s>[INST] Be brief.\n\nHi [/INST] Hello!</s>[INST] 2+2? [/INST]",
}

END_OF_TURN = {
    "chatml": "<|im_end|>",
    "llama3": "<|eot_id|>",
    "gemma": "<end_of_turn>",
    "phi": "<|end|>",
    "mistral": "</s>",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_fallback_family_renders_golden_text(family: str) -> None:
    template = fallback_template(family)
    assert template.render(CONVERSATION) == GOLDEN[family]
    assert template.end_of_turn[0] == END_OF_TURN[family]


@pytest.mark.parametrize("family", FAMILIES)
def test_earlier_turns_render_identically_as_the_chat_grows(family: str) -> None:
    # The KV cache is reused only if turn N's prompt is a prefix of turn N+1's.
    template = fallback_template(family)
    first = template.render(CONVERSATION[:2])
    assert template.render(CONVERSATION).startswith(first)
    assert template.is_prefix_stable()


def test_korean_text_passes_through_unchanged() -> None:
    text = "서울의 인구는 얼마나 되나요? 🙂"
    rendered = fallback_template("chatml").render([ChatMessage("user", text)])
    assert f"<|im_start|>user\n{text}<|im_end|>\n" in rendered


@pytest.mark.parametrize(
    ("architecture", "name", "vocab", "family"),
    [
        ("gemma3", "Gemma 3 1b It", None, "gemma"),
        ("gemma2", None, None, "gemma"),
        ("phi3", "Phi 3.5 Mini Instruct", None, "phi"),
        ("qwen2", "Qwen2.5 1.5B Instruct", None, "chatml"),
        ("llama", "Meta Llama 3.1 8B Instruct", None, "llama3"),
        ("llama", "Llama 3.2 1B Instruct", 128256, "llama3"),
        ("llama", "Mistral 7B Instruct v0.3", 32768, "mistral"),
        ("llama", "Smollm2 135M", 49152, "chatml"),
        ("exaone", "EXAONE 3.5 2.4B Instruct", None, "chatml"),
        (None, None, None, "chatml"),
    ],
)
def test_family_from_architecture_and_name(architecture, name, vocab, family) -> None:
    assert family_for(architecture, name, vocab) == family


def test_bundled_gguf_template_is_used(bundled_gguf: Path) -> None:
    info = read_gguf_info(bundled_gguf)
    template = select_template(
        info.chat_template,
        architecture=info.architecture,
        name=info.name,
        bos_token=info.bos_token,
        eos_token=info.eos_token,
    )
    assert template.name == "gguf"
    assert "<|im_end|>" in template.end_of_turn
    # SmolLM2's template adds its own system prompt when the chat has none.
    text = template.render([ChatMessage("user", "Hi")])
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert template.render(CONVERSATION) == GOLDEN["chatml"]
    assert template.is_prefix_stable()


def test_missing_template_falls_back_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="chatapp.engine.chat_formats"):
        template = select_template(None, architecture="gemma3", name="Gemma 3 1b It")
    assert template.name == "gemma"
    assert "has no chat template" in caplog.text and "gemma" in caplog.text


def test_broken_template_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        template = select_template("{% for m in messages %}{{ m.content", architecture="phi3")
    assert template.name == "phi"
    assert "fails to render" in caplog.text


def test_template_that_drops_messages_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        template = select_template("Hello {{ bos_token }}", architecture="qwen2")
    assert template.name == "chatml"
    assert "drops user messages" in caplog.text


def test_template_without_system_role_gets_system_text_in_first_user_turn() -> None:
    # Gemma 2's own template raises on a system message; the system text moves, the model stays.
    strict = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "<turn>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    )
    template = select_template(strict, architecture="gemma2", eos_token="<eos>")
    assert template.name == "gguf" and template.merge_system
    assert template.render(CONVERSATION[:2]) == "<turn>user: Be brief.\n\nHi\n"


def test_template_globals_match_transformers() -> None:
    source = (
        "{{ bos_token }}{{ messages | tojson }}{% if add_generation_prompt %}>{% endif %}"
        "{{ strftime_now('%Y') | length }}"
    )
    template = ChatTemplate(source=source, name="gguf", bos_token="<B>")
    text = template.render([ChatMessage("user", "한국")])
    assert text == '<B>[{"role": "user", "content": "한국"}]>4'


MISTRAL_STRICT = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant') }}"
    "{% endif %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
    "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


def test_two_user_turns_in_a_row_are_merged_for_strict_templates() -> None:
    template = select_template(
        MISTRAL_STRICT, architecture="llama", name="Mistral 7B", bos_token="<s>", eos_token="</s>"
    )
    assert template.name == "gguf"
    chat = [ChatMessage("user", "First"), ChatMessage("user", "Second")]
    assert render_chat(template, chat) == "<s>[INST] First\n\nSecond [/INST]"


def test_own_template_failing_on_a_chat_falls_back_for_that_chat(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Works on the sample conversation, fails on a long answer: the family format takes over.
    fragile = (
        "{% for m in messages %}{% if m['content'] | length > 40 %}"
        "{{ raise_exception('too long') }}{% endif %}"
        "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    template = select_template(fragile, architecture="phi3")
    assert template.name == "gguf" and template.fallback_family == "phi"
    with caplog.at_level(logging.WARNING):
        text = render_chat(template, [ChatMessage("user", "x" * 50)])
    assert text == f"<|user|>\n{'x' * 50}<|end|>\n<|assistant|>\n"
    assert "using the phi format" in caplog.text
