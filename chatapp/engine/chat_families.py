"""The built-in chat formats: one template per family (chatml, llama3, gemma, phi, mistral) for
models whose GGUF has no working template, and how a model's architecture and name pick one."""

from __future__ import annotations

FAMILIES = ("chatml", "llama3", "gemma", "phi", "mistral")

FALLBACK_TEMPLATES: dict[str, str] = {
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
        "<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n"
        "{% endif %}"
    ),
    # Gemma has no system role: the system text opens the first user turn.
    "gemma": (
        "{{ bos_token }}{% set ns = namespace(system='') %}"
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{% set ns.system = ns.system + m['content'] + '\n\n' %}{% else %}"
        "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
        "{% if m['role'] == 'user' %}{{ ns.system }}{% set ns.system = '' %}{% endif %}"
        "{{ m['content'] | trim }}<end_of_turn>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    ),
    "phi": (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    ),
    # Mistral instruct (v0.1-v0.3 style): the system text opens the first user turn.
    "mistral": (
        "{{ bos_token }}{% set ns = namespace(system='') %}"
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{% set ns.system = ns.system + m['content'] + '\n\n' %}"
        "{% elif m['role'] == 'user' %}[INST] {{ ns.system }}{{ m['content'] }} [/INST]"
        "{% set ns.system = '' %}{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}"
        "{% endfor %}"
    ),
}

FAMILY_TOKENS: dict[str, tuple[str, str, str]] = {
    # family -> (bos, eos, end-of-turn) used when the vocabulary does not name them
    "chatml": ("", "<|im_end|>", "<|im_end|>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>"),
    "gemma": ("<bos>", "<eos>", "<end_of_turn>"),
    "phi": ("<s>", "<|endoftext|>", "<|end|>"),
    "mistral": ("<s>", "</s>", "</s>"),
}


def family_for(
    architecture: str | None, name: str | None = None, vocab_size: int | None = None
) -> str:
    """The fallback template family for a model's GGUF architecture and name."""
    arch = (architecture or "").lower()
    label = (name or "").lower().replace("_", "-").replace(" ", "-")
    if arch.startswith("gemma"):
        return "gemma"
    if arch.startswith("phi"):
        return "phi"
    if arch in ("mistral", "mistral3") or "mistral" in label or "mixtral" in label:
        return "mistral"
    if arch.startswith("qwen") or "qwen" in label or "smollm" in label:
        return "chatml"
    if arch == "llama":
        if "llama-3" in label or "llama3" in label or (vocab_size or 0) >= 128_000:
            return "llama3"
        if "llama-2" in label or "llama2" in label:
            return "mistral"  # Llama 2 chat uses the same [INST] turns
    return "chatml"
