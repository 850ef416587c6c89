"""What chatapp sends an OpenAI-compatible server for a reply: the request body, with the
sampler fields and chat-template variables each server flavor understands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from chatapp.domain import ChatMessage, GenerationParams
from chatapp.engine.control_tokens import defuse_message
from chatapp.engine.openai_tools import tool_fields, wire_message

Flavor = Literal["llama.cpp", "llama-cpp-python", "vllm", "openai"]


def chat_request_body(
    model: str, flavor: Flavor, messages: Sequence[ChatMessage], params: GenerationParams
) -> dict[str, Any]:
    """The JSON sent to ``/chat/completions`` for these messages and settings: the OpenAI
    fields, plus the sampler fields each server flavor understands under its own names."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [defuse_message(wire_message(m)) for m in messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_tokens,
    }
    body.update(tool_fields(params))
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    if flavor in ("llama.cpp", "llama-cpp-python"):
        body.update(top_k=params.top_k, min_p=params.min_p, repeat_penalty=params.repeat_penalty)
        if params.grammar:
            body["grammar"] = params.grammar
    elif flavor == "vllm":
        body.update(
            top_k=params.top_k,
            min_p=params.min_p,
            repetition_penalty=params.repeat_penalty,
        )
    kwargs = template_kwargs(params)
    if kwargs and flavor in ("llama.cpp", "vllm"):
        body["chat_template_kwargs"] = kwargs
    if params.reasoning_effort is not None:
        body["reasoning_effort"] = params.reasoning_effort
    if params.json_schema is not None:
        if flavor == "llama-cpp-python":
            body["response_format"] = {"type": "json_object", "schema": params.json_schema}
        else:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": params.json_schema},
            }
    return body


def template_kwargs(params: GenerationParams) -> dict[str, Any]:
    """Chat template variables for the thinking setting (servers pass them through)."""
    constrained = bool(params.grammar or params.json_schema)
    if params.thinking == "on":
        return {"enable_thinking": True}
    if params.thinking == "off" or (constrained and params.thinking == "default"):
        return {"enable_thinking": False}
    return {}
