"""Real published chat templates (tests/data/chat_templates/, sources in SOURCES.md) rendered by
chatapp and by Hugging Face transformers' ``render_jinja_template`` (the oracle) must agree, for
multi-turn chats with a system prompt, Korean text and an assistant turn that had reasoning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatapp.domain import ChatMessage
from chatapp.engine.chat_formats import ChatTemplate, select_template
from chatapp.engine.reasoning import ReasoningSplitter

TEMPLATES = Path(__file__).resolve().parent.parent / "data" / "chat_templates"

# file stem -> (bos, eos) as the model's vocabulary names them
FAMILIES: dict[str, tuple[str, str]] = {
    "Qwen-Qwen3-0.6B": ("", "<|im_end|>"),
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": (
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
    ),
    "openai-gpt-oss-120b": ("<|startoftext|>", "<|return|>"),
    "google-gemma-2-2b-it": ("<bos>", "<eos>"),
    "gemma4": ("<bos>", "<eos>"),
    "meta-llama-Llama-3.2-3B-Instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "microsoft-Phi-3.5-mini-instruct": ("<s>", "<|endoftext|>"),
    "mistralai-Mistral-Nemo-Instruct-2407": ("<s>", "</s>"),
    "ibm-granite-granite-3.3-2B-Instruct": ("<|end_of_text|>", "<|end_of_text|>"),
    "LFM2.5-8B-A1B": ("<|startoftext|>", "<|im_end|>"),
    "HuggingFaceTB-SmolLM3-3B": ("<|im_start|>", "<|im_end|>"),
    "LGAI-EXAONE-EXAONE-3.5-2.4B-Instruct": ("[BOS]", "[|endofturn|]"),
}
SYSTEM_LESS = {"google-gemma-2-2b-it"}

CHAT = [
    ChatMessage("system", "You answer briefly. 한국어로 물으면 한국어로 답하세요."),
    ChatMessage("user", "서울의 인구는 얼마나 되나요?"),
    ChatMessage(
        "assistant",
        "약 940만 명입니다.",
        reasoning="The user asks in Korean about Seoul's population; about 9.4 million.",
    ),
    ChatMessage("user", "And Busan? Answer in English."),
]
NO_SYSTEM = CHAT[1:]
LAST_TURN_REASONED = [*CHAT[:3]]  # the reasoned reply is the last message


def _source(stem: str) -> str:
    return (TEMPLATES / f"{stem}.jinja").read_text(encoding="utf-8")


def _oracle(stem: str, messages: list[ChatMessage], gen: bool, **variables: Any) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    bos, eos = FAMILIES[stem]
    return render_jinja_template(
        conversations=[[m.to_dict() for m in messages]],
        chat_template=_source(stem),
        add_generation_prompt=gen,
        bos_token=bos,
        eos_token=eos,
        **variables,
    )[0][0]


def _ours(stem: str) -> ChatTemplate:
    bos, eos = FAMILIES[stem]
    return ChatTemplate(source=_source(stem), name="gguf", bos_token=bos, eos_token=eos)


def test_every_template_file_is_listed_with_its_source() -> None:
    files = {p.stem for p in TEMPLATES.glob("*.jinja")}
    assert files == set(FAMILIES) and len(files) >= 12
    sources = (TEMPLATES / "SOURCES.md").read_text(encoding="utf-8")
    for stem in files:
        assert f"`{stem}.jinja`" in sources, stem


@pytest.mark.parametrize("stem", sorted(set(FAMILIES) - SYSTEM_LESS))
@pytest.mark.parametrize("chat", [CHAT, NO_SYSTEM], ids=["system", "no-system"])
def test_rendering_matches_transformers(stem: str, chat: list[ChatMessage]) -> None:
    ours = _ours(stem)
    for gen in (True, False):
        expected = _oracle(stem, chat, gen)
        assert ours.render(chat, add_generation_prompt=gen) == expected
    assert "서울의 인구는 얼마나 되나요?" in ours.render(chat)


@pytest.mark.parametrize("stem", sorted(set(FAMILIES) - SYSTEM_LESS))
def test_a_reasoned_last_turn_renders_like_transformers(stem: str) -> None:
    # Templates that keep the latest turn's reasoning (Qwen3, LFM2.5, gpt-oss in training
    # form) read it from reasoning_content / thinking; the others drop it.
    ours = _ours(stem)
    expected = _oracle(stem, LAST_TURN_REASONED, False)
    assert ours.render(LAST_TURN_REASONED, add_generation_prompt=False) == expected


def test_reasoning_is_kept_only_where_the_template_asks() -> None:
    qwen = _ours("Qwen-Qwen3-0.6B")
    thought = CHAT[2].reasoning
    assert thought is not None
    assert thought not in qwen.render(CHAT)  # an earlier turn: Qwen3 drops it
    assert f"<think>\n{thought}\n</think>" in qwen.render(LAST_TURN_REASONED, False)
    llama = _ours("meta-llama-Llama-3.2-3B-Instruct")
    assert thought not in llama.render(LAST_TURN_REASONED, False)


@pytest.mark.parametrize("stem", sorted(SYSTEM_LESS))
def test_system_less_template_gets_the_system_text_in_the_first_user_turn(stem: str) -> None:
    from jinja2 import TemplateError

    with pytest.raises(TemplateError, match="System role not supported"):
        _oracle(stem, CHAT, True)
    bos, eos = FAMILIES[stem]
    chosen = select_template(_source(stem), architecture="gemma2", bos_token=bos, eos_token=eos)
    assert chosen.name == "gguf" and chosen.merge_system
    folded = [ChatMessage("user", f"{CHAT[0].content}\n\n{CHAT[1].content}"), *CHAT[2:]]
    assert chosen.render(CHAT) == _oracle(stem, folded, True)


@pytest.mark.parametrize(
    ("stem", "switch", "on_by_default", "variables"),
    [
        ("Qwen-Qwen3-0.6B", "enable_thinking", True, [{"enable_thinking": False}]),
        ("HuggingFaceTB-SmolLM3-3B", "enable_thinking", True, [{"enable_thinking": False}]),
        ("gemma4", "enable_thinking", False, [{"enable_thinking": True}]),
        ("ibm-granite-granite-3.3-2B-Instruct", "thinking", False, [{"thinking": True}]),
        ("openai-gpt-oss-120b", None, True, [{"reasoning_effort": "low"}]),
        ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", None, True, []),
        ("LFM2.5-8B-A1B", None, False, []),
    ],
)
def test_thinking_templates_are_recognised_and_switch_like_transformers(
    stem: str, switch: str | None, on_by_default: bool, variables: list[dict[str, Any]]
) -> None:
    ours = _ours(stem)
    support = ours.thinking
    assert support.thinks and support.switch == switch
    assert support.default_on == on_by_default
    for values in variables:
        rendered = ours.render(NO_SYSTEM, variables=values)
        assert rendered == _oracle(stem, NO_SYSTEM, True, **values)
        assert rendered != ours.render(NO_SYSTEM)  # the variable does change the prompt


@pytest.mark.parametrize(
    "stem",
    [
        "meta-llama-Llama-3.2-3B-Instruct",
        "microsoft-Phi-3.5-mini-instruct",
        "mistralai-Mistral-Nemo-Instruct-2407",
        "google-gemma-2-2b-it",
        "LGAI-EXAONE-EXAONE-3.5-2.4B-Instruct",
    ],
)
def test_templates_without_thinking_are_not_taken_for_thinking_ones(stem: str) -> None:
    assert not _ours(stem).thinking.thinks


@pytest.mark.parametrize(
    ("stem", "variables", "reply", "reasoning", "answer"),
    [
        # DeepSeek-R1's generation prompt opens <think> itself: the reply starts inside it.
        (
            "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
            {},
            "Busan has about 3.3 million.\n</think>\n\nAbout 3.3 million people.",
            "Busan has about 3.3 million.",
            "About 3.3 million people.",
        ),
        # Qwen3 with thinking on: the model opens the block.
        (
            "Qwen-Qwen3-0.6B",
            {},
            "<think>\nBusan: 3.3M.\n</think>\n\nAbout 3.3 million.",
            "Busan: 3.3M.",
            "About 3.3 million.",
        ),
        # Qwen3 with thinking off: the template wrote an empty block; all of it is answer.
        (
            "Qwen-Qwen3-0.6B",
            {"enable_thinking": False},
            "About 3.3 million.",
            "",
            "About 3.3 million.",
        ),
        (
            "openai-gpt-oss-120b",
            {"reasoning_effort": "low"},
            "<|channel|>analysis<|message|>Busan population.<|end|>"
            "<|start|>assistant<|channel|>final<|message|>About 3.3 million.",
            "Busan population.",
            "About 3.3 million.",
        ),
        (
            "gemma4",
            {"enable_thinking": True},
            "<|channel>thought\nBusan, 3.3M.<channel|>About 3.3 million.",
            "Busan, 3.3M.",
            "About 3.3 million.",
        ),
        ("gemma4", {}, "About 3.3 million.", "", "About 3.3 million."),
    ],
)
def test_the_reply_is_split_from_where_the_generation_prompt_left_it(
    stem: str, variables: dict[str, Any], reply: str, reasoning: str, answer: str
) -> None:
    from chatapp.domain import ReasoningEvent, TokenEvent

    ours = _ours(stem)
    fmt = ours.thinking.format
    assert fmt is not None
    splitter = ReasoningSplitter(fmt, ours.generation_prompt(NO_SYSTEM, variables))
    events = [e for piece in reply for e in splitter.feed(piece)] + splitter.flush()
    assert "".join(e.text for e in events if isinstance(e, ReasoningEvent)) == reasoning
    assert "".join(e.text for e in events if isinstance(e, TokenEvent)) == answer


def test_gpt_oss_end_marker_does_not_end_the_reply() -> None:
    bos, eos = FAMILIES["openai-gpt-oss-120b"]
    chosen = select_template(
        _source("openai-gpt-oss-120b"), architecture="gpt-oss", bos_token=bos, eos_token=eos
    )
    assert "<|end|>" not in chosen.end_of_turn
    assert {"<|return|>", "<|call|>"} <= set(chosen.end_of_turn)


@pytest.mark.parametrize("stem", sorted(FAMILIES))
def test_own_template_is_chosen_and_keeps_history_stable(stem: str) -> None:
    bos, eos = FAMILIES[stem]
    chosen = select_template(_source(stem), architecture=None, bos_token=bos, eos_token=eos)
    assert chosen.name == "gguf"
    assert chosen.render(CHAT)  # renders this chat without falling back
