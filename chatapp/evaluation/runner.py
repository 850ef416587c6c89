"""Running templates over an evaluation set and scoring them.

One backend (the model loaded once) serves every configuration; each configuration is a template
with a number of shots, an example-selection method and the output constraint on or off. Every
item is a ``TurnRequest`` sent through a ``ChatSession`` that stores nothing — the same pipeline,
system prompt and context budget as ``chatapp run`` — so what is measured is what users get.
Time per item is the wall time from preparing the turn to the last token.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatapp.domain import CancelToken, GenerationParams
from chatapp.errors import ChatappError
from chatapp.evaluation import metrics
from chatapp.evaluation.dataset import EvalData
from chatapp.prompting.schema import INPUT, Template
from chatapp.prompting.turn import default_embedder

if TYPE_CHECKING:
    from chatapp.engine.base import Backend
    from chatapp.retrieval.search.grounding import DocumentRetriever


@dataclass
class RunConfig:
    """One column of the comparison: a template and how it is prompted."""

    template: Template
    shots: int | None = None
    select: str | None = None
    constrain: bool = True
    variables: dict[str, Any] = field(default_factory=dict)

    def has_examples(self) -> bool:
        return bool(self.template.examples or self.template.examples_from)

    @property
    def effective_shots(self) -> int:
        if not self.has_examples():
            return 0
        k = self.template.selection.k if self.shots is None else self.shots
        return len(self.template.examples) if k is None else k

    @property
    def method(self) -> str:
        return self.select or self.template.selection.method

    def can_constrain(self) -> bool:
        out = self.template.output
        if out.type == "choices" and self.template.reasoning is not None:
            return False  # reasoning stays free; the extracted answer is checked instead
        return out.type in ("choices", "json") and out.constrain

    @property
    def label(self) -> str:
        shots = self.effective_shots
        parts = [self.template.name, "0-shot" if shots == 0 else f"{shots}-shot {self.method}"]
        if self.can_constrain():
            parts.append("constrained" if self.constrain else "unconstrained")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "template": self.template.name,
            "task": self.template.task,
            "shots": self.effective_shots,
            "select": self.method if self.effective_shots else None,
            "constrained": self.constrain and self.can_constrain(),
            "variables": self.variables,
        }


def expand_configs(
    templates: Sequence[Template],
    shots: Sequence[int | None] = (None,),
    selects: Sequence[str | None] = (None,),
    constrain: Sequence[bool] = (True,),
    variables: dict[str, Any] | None = None,
) -> list[RunConfig]:
    """Every combination, without duplicates (the selection method does not matter at 0 shots,
    nor the constraint for free-text templates)."""
    configs: list[RunConfig] = []
    seen: set[str] = set()
    for template, k, method, on in itertools.product(templates, shots, selects, constrain):
        given = {k_: v for k_, v in (variables or {}).items() if k_ in template.all_variables()}
        config = RunConfig(template, k, method, on, given)
        if config.label not in seen:
            seen.add(config.label)
            configs.append(config)
    return configs


@dataclass
class ItemResult:
    line: int
    input: str
    gold: Any
    output: str
    parsed: Any
    reasoning: str | None
    valid: bool
    error: str | None
    seconds: float
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class RunResult:
    config: RunConfig
    items: list[ItemResult]
    metrics: dict[str, Any]

    def to_dict(self, with_items: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"config": self.config.to_dict(), "metrics": self.metrics}
        if with_items:
            data["items"] = [item.__dict__ for item in self.items]
        return data


def item_request(config: RunConfig, item: Any, collection: str | None = None) -> Any:
    """The turn one evaluation item becomes (stored nowhere); with ``collection`` it is answered
    from those documents, as ``chatapp run -C`` would."""
    from chatapp.session import TemplateCall, TurnRequest

    return TurnRequest(
        item.input,
        template=TemplateCall(
            config.template.name,
            {k: str(v) for k, v in {**config.variables, **item.variables}.items()},
            shots=config.shots,
            select=config.select,
            constrain=config.constrain,
        ),
        collection=collection,
        store=False,
    )


def run_config(
    config: RunConfig,
    data: EvalData,
    backend: Backend,
    base: GenerationParams,
    *,
    system_prompt: str | None = None,
    on_item: Callable[[ItemResult], None] | None = None,
    cancel: CancelToken | None = None,
    collection: str | None = None,
    retriever: DocumentRetriever | None = None,
) -> RunResult:
    """Run one configuration over every item and score it (from ``collection`` when given)."""
    from chatapp.session import ChatSession, consume

    session = ChatSession(
        backend,
        None,
        system_prompt=system_prompt,
        params=base,
        retriever=retriever,
        templates={config.template.name: config.template},
    )
    results: list[ItemResult] = []
    for item in data.items:
        if cancel is not None and cancel.cancelled:
            break
        started = time.perf_counter()
        text, value, reasoning, valid, error = "", None, None, False, None
        prompt_tokens = completion_tokens = 0
        try:
            result = consume(session.send(item_request(config, item, collection), cancel))
            if result.parsed is not None:
                parsed = result.parsed
                text, value, reasoning = parsed.answer, parsed.value, parsed.reasoning
                valid, error = parsed.valid, parsed.error
            if result.error:
                valid, error = False, result.error
            prompt_tokens = result.stats.prompt_tokens
            completion_tokens = result.stats.completion_tokens
        except ChatappError as exc:
            error = exc.message
        record = ItemResult(
            item.line,
            item.input,
            item.label,
            text,
            value,
            reasoning,
            valid,
            error,
            time.perf_counter() - started,
            prompt_tokens,
            completion_tokens,
        )
        results.append(record)
        if on_item is not None:
            on_item(record)
    return RunResult(config, results, score(config, results))


def score(config: RunConfig, items: list[ItemResult]) -> dict[str, Any]:
    """Metrics for the template's task, plus invalid-output rate and time per item."""
    n = len(items)
    out: dict[str, Any] = {
        "n": n,
        "invalid_rate": sum(not i.valid for i in items) / n if n else 0.0,
        "seconds_per_item": sum(i.seconds for i in items) / n if n else 0.0,
        "prompt_tokens_mean": sum(i.prompt_tokens for i in items) / n if n else 0.0,
    }
    if not n:
        return out
    golds = [i.gold for i in items]
    valid_values = [i.parsed if i.valid else None for i in items]
    task = config.template.task
    if task == "classification":
        out.update(metrics.classification_metrics(golds, valid_values))
    elif task == "summarization":
        out.update(metrics.rouge_metrics([i.output for i in items], [str(g) for g in golds]))
    elif task in ("translation", "rewrite"):
        language = config.variables.get("target")
        out.update(
            metrics.translation_metrics(
                [i.output for i in items], [str(g) for g in golds], _language(language)
            )
        )
    elif task == "qa":
        out.update(metrics.qa_metrics([i.output for i in items], golds))
    elif task == "reasoning":
        out.update(metrics.reasoning_metrics(valid_values, golds))
    elif task == "extraction" and all(isinstance(g, dict | list) for g in golds):
        out.update(metrics.extraction_metrics(valid_values, golds))
    return out


def _language(value: Any) -> str | None:
    from chatapp.prompting.languages import resolve_language

    return resolve_language(str(value)) if value else None


def variable_names(templates: Iterable[Template]) -> set[str]:
    """Variables (other than the input) that an evaluation file's fields may fill."""
    return {name for t in templates for name in t.all_variables() if name != INPUT}


def run_all(
    configs: Sequence[RunConfig],
    data: EvalData,
    backend: Backend,
    base: GenerationParams,
    *,
    system_prompt: str | None = None,
    on_item: Callable[[RunConfig, ItemResult], None] | None = None,
    cancel: CancelToken | None = None,
    collection: str | None = None,
    retriever: DocumentRetriever | None = None,
) -> list[RunResult]:
    """Every configuration, one after another, on one backend, with the system prompt
    ``chatapp run`` would use. The embedder for ``similar`` selection is loaded before timing
    starts so it does not count against the first item."""
    if any(c.method == "similar" and c.effective_shots for c in configs):
        default_embedder()
    results = []
    for config in configs:
        callback = (lambda item, c=config: on_item(c, item)) if on_item else None
        results.append(
            run_config(
                config,
                data,
                backend,
                base,
                system_prompt=system_prompt,
                on_item=callback,
                cancel=cancel,
                collection=collection,
                retriever=retriever,
            )
        )
    return results
