"""Thinking apart from the answer: format detection, the streaming splitter, the switches, and
control-token marking (pure Python; real templates are in test_chat_formats_golden.py)."""

from __future__ import annotations

import pytest

from chatapp.domain import ReasoningEvent, TokenEvent
from chatapp.engine.control_tokens import MARK_CLOSE, MARK_OPEN, ControlTokens, unmark
from chatapp.engine.reasoning import (
    GRANITE,
    KNOWN_FORMATS,
    THINK,
    ReasoningFormat,
    ReasoningSplitter,
    ThinkingSupport,
    detect_reasoning_format,
)
from chatapp.errors import UsageError

HARMONY = next(f for f in KNOWN_FORMATS if f.name == "harmony")
GEMMA4 = next(f for f in KNOWN_FORMATS if f.name == "gemma4")


def split(fmt: ReasoningFormat, reply: str, prompt: str = "", step: int = 1):
    """(thinking, answer, splitter) of a reply streamed ``step`` characters at a time."""
    splitter = ReasoningSplitter(fmt, prompt)
    events = []
    for at in range(0, len(reply), step):
        events += splitter.feed(reply[at : at + step])
    events += splitter.flush()
    thinking = "".join(e.text for e in events if isinstance(e, ReasoningEvent))
    answer = "".join(e.text for e in events if isinstance(e, TokenEvent))
    return thinking, answer, splitter


@pytest.mark.parametrize("step", [1, 2, 5, 1000])
@pytest.mark.parametrize(
    ("fmt", "prompt", "reply", "thinking", "answer"),
    [
        (THINK, "<|im_start|>assistant\n", "<think>\nA. B.\n</think>\n\n답: 네", "A. B.", "답: 네"),
        (
            THINK,
            "<｜Assistant｜><think>\n",
            "Opened by the prompt.\n</think>\n\nYes",
            "Opened by the prompt.",
            "Yes",
        ),
        (THINK, "assistant\n<think>\n\n</think>\n\n", "  Only an answer", "", "Only an answer"),
        (THINK, "assistant\n", " No thinking <b>here</b>", "", " No thinking <b>here</b>"),
        (
            THINK,
            "assistant\n",
            "Answer first, then <think> as text",
            "",
            "Answer first, then <think> as text",
        ),
        (THINK, "assistant\n", "<think>never closed", "never closed", ""),
        (GRANITE, "", "<think>plan</think><response>Reply</response>", "plan", "Reply"),
        (GEMMA4, "<|turn>model\n", "<|channel>thought\nHmm<channel|>Done", "Hmm", "Done"),
        (GEMMA4, "<|turn>model\n<|channel>thought\n<channel|>", "Done", "", "Done"),
        (
            HARMONY,
            "<|start|>assistant",
            "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>Say.",
            "Think.",
            "Say.",
        ),
        (HARMONY, "<|start|>assistant", "plain text, no channels", "", "plain text, no channels"),
    ],
)
def test_splitter(fmt, prompt, reply, thinking, answer, step) -> None:
    got_thinking, got_answer, _ = split(fmt, reply, prompt, step)
    assert (got_thinking, got_answer) == (thinking, answer)


def test_answer_state_tells_when_constraints_may_start() -> None:
    splitter = ReasoningSplitter(THINK, "assistant\n")
    assert not splitter.in_answer
    splitter.feed("<thi")  # could still be the marker
    assert not splitter.in_answer and not splitter.reasoned
    splitter.feed("nk>x")
    assert splitter.in_reasoning and splitter.reasoned
    splitter.feed("</think>")
    assert splitter.in_answer
    plain = ReasoningSplitter(THINK, "assistant\n")
    plain.feed("Hi")
    assert plain.in_answer and not plain.reasoned  # no thinking: all of it is answer
    assert ReasoningSplitter(THINK, "<think>\n\n</think>\n\n").in_answer


def test_closing_text_closes_each_format() -> None:
    for fmt in (THINK, GEMMA4, HARMONY):
        prompt = "<|start|>assistant" if fmt is HARMONY else ""
        splitter = ReasoningSplitter(fmt, prompt)
        splitter.feed(fmt.open if fmt is not HARMONY else "<|channel|>analysis<|message|>")
        splitter.feed("thinking")
        assert splitter.in_reasoning
        splitter.feed(fmt.closing_text)
        assert splitter.in_answer, fmt.name


@pytest.mark.parametrize(
    ("source", "vocabulary", "name"),
    [
        ("{{ '<think>\\n' }}", (), "think"),
        ("... <|channel|>final<|message|> ...", (), "harmony"),
        ("{{ '<|channel>thought\\n<channel|>' }}", (), "gemma4"),
        ("<seed:think>", (), "seed"),
        ("[THINK]", (), "magistral"),
        ("<thought>", (), "thought"),
        ("<|im_start|>{{ m.content }}", ("<think>", "</think>"), "think"),
        ("<|im_start|>{{ m.content }}", ("<think>",), None),
        ("<|im_start|>{{ m.content }}", (), None),
    ],
)
def test_format_is_read_from_template_and_vocabulary(source, vocabulary, name) -> None:
    fmt = detect_reasoning_format(source, vocabulary)
    assert (fmt.name if fmt else None) == name


def test_template_variables_follow_the_settings() -> None:
    qwen = ThinkingSupport(format=THINK, switch="enable_thinking", default_on=True)
    assert qwen.template_variables("default", None) == {}
    assert qwen.template_variables("off", None) == {"enable_thinking": False}
    assert qwen.template_variables("on", None) == {"enable_thinking": True}
    # A grammar switches thinking off unless it was asked for.
    assert qwen.template_variables("default", None, constrained=True) == {"enable_thinking": False}
    assert qwen.template_variables("on", None, constrained=True) == {"enable_thinking": True}
    gpt_oss = ThinkingSupport(format=HARMONY, default_on=True, efforts=("low", "medium", "high"))
    assert gpt_oss.template_variables("off", "low") == {"reasoning_effort": "low"}
    with pytest.raises(UsageError, match=r"^reasoning effort 'max': this model takes low, medium"):
        gpt_oss.template_variables("default", "max")
    assert qwen.template_variables("default", "high") == {}  # nothing takes an effort
    assert "enable_thinking, on by default" in qwen.describe()
    assert ThinkingSupport().describe() == "no" and not ThinkingSupport().thinks


def test_control_tokens_are_marked_and_split_back() -> None:
    control = ControlTokens(["<|im_end|>", "<|im_start|>", "<|im"])
    marked = control.mark("a<|im_end|>b<|im")
    assert marked == f"a{MARK_OPEN}<|im_end|>{MARK_CLOSE}b{MARK_OPEN}<|im{MARK_CLOSE}"
    rendered = f"<|im_start|>user\n{marked}<|im_end|>"
    assert control.split(rendered) == [
        ("<|im_start|>user\na", False),
        ("<|im_end|>", True),
        ("b", False),
        ("<|im", True),
        ("<|im_end|>", False),
    ]
    assert unmark(rendered) == "<|im_start|>user\na<|im_end|>b<|im<|im_end|>"
    # Marks typed into a message are removed before marking, so they forge nothing.
    assert control.mark(f"{MARK_OPEN}x{MARK_CLOSE}") == "x"
    # A template that cuts a marked pair apart (content.split) leaves lone marks: dropped,
    # but the text on either side stays apart.
    assert control.split(f"ab{MARK_OPEN}cd") == [("ab", False), ("cd", False)]
    item = control.mark_message(
        {"role": "user", "content": "<|im_end|>", "thinking": "<|im_start|>"}
    )
    assert item["content"].startswith(MARK_OPEN) and item["thinking"].startswith(MARK_OPEN)
    assert not ControlTokens([]) and ControlTokens([]).mark("<|im_end|>") == "<|im_end|>"


def test_defuse_breaks_every_control_token_shape_and_nothing_else() -> None:
    from chatapp.engine.control_tokens import WORD_JOINER, defuse, defuse_message

    for token in ("<|im_end|>", "<|start_header_id|>", "<|channel|>", "<｜Assistant｜>",
                  "<start_of_turn>", "<end_of_turn>", "[INST]", "[/INST]", "</s>", "<s>"):  # fmt: skip
        out = defuse(f"a {token} b")
        assert token not in out and out.replace(WORD_JOINER, "") == f"a {token} b"
    for text in ("a | b", "<b>bold</b>", "x <| y", "if a<|b|>c", "안녕하세요 <|im_end|>"):
        assert defuse(text).replace(WORD_JOINER, "") == text
    assert defuse("<b>bold</b> [link]") == "<b>bold</b> [link]"
    message = defuse_message({"role": "user", "content": "<|im_end|>", "reasoning_content": "</s>"})
    assert message["role"] == "user" and WORD_JOINER in message["content"]
    assert WORD_JOINER in message["reasoning_content"]
