"""The settings screen: system prompt, sampling, context size, threads, GPU layers and the
tool rules (each revocable).

Values are checked by the same typed settings model the config file uses; a bad value is named
under its field and nothing is saved. Saving writes config.toml; model settings (context size,
threads, GPU layers) reopen the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Static, TextArea

from chatapp.terminal_text import safe_for_terminal

if TYPE_CHECKING:
    from chatapp.config import Settings


@dataclass(frozen=True)
class Field:
    key: str
    """``section.name`` in Settings."""
    label: str
    kind: type
    optional: bool = False
    hint: str = ""

    @property
    def widget_id(self) -> str:
        return "set-" + self.key.replace(".", "-").replace("_", "-")


FIELDS: tuple[Field, ...] = (
    Field("generation.temperature", "Temperature", float, hint="0 = deterministic, 0.7 default"),
    Field("generation.top_p", "Top p", float, hint="nucleus sampling, 0 < p ≤ 1"),
    Field("generation.max_tokens", "Max tokens", int, hint="longest reply"),
    Field("generation.seed", "Seed", int, optional=True, hint="blank = a new random seed"),
    Field("model.n_ctx", "Context size", int, hint="tokens; reopens the model"),
    Field("model.n_threads", "Threads", int, optional=True, hint="blank = the cores that are free"),
    Field(
        "model.n_gpu_layers",
        "GPU layers",
        int,
        optional=True,
        hint="blank = all if llama.cpp has a GPU",
    ),
)
MODEL_KEYS = {"model.n_ctx", "model.n_threads", "model.n_gpu_layers"}


def _get(settings: Settings, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(settings, section), name)


def parse_field(field: Field, raw: str) -> Any:
    """Text from the form as the field's type; ValueError with a message naming the field."""
    text = raw.strip()
    if not text:
        if field.optional:
            return None
        raise ValueError(f"{field.label.lower()}: a value is needed")
    try:
        return field.kind(text)
    except ValueError:
        noun = "a whole number" if field.kind is int else "a number"
        raise ValueError(f"{field.label.lower()}: {text!r} is not {noun}") from None


class RevokeButton(Button):
    """Revokes the rule of one tool."""

    def __init__(self, tool: str) -> None:
        super().__init__("Revoke", classes="revoke-rule", compact=True)
        self.tool = tool


class SettingsScreen(ModalScreen[tuple["Settings", bool] | None]):
    """Dismisses with (new settings, whether the model must reopen), or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.revoked: set[str] = set()
        """Tools whose rule Revoke took away (a rule added meanwhile, from an approval card,
        is kept when saving)."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog settings"):
            yield Label("Settings", classes="dialog-title")
            with VerticalScroll(id="settings-form"):
                yield Label("System prompt (for new conversations)", classes="section-label")
                yield TextArea(
                    self.settings.chat.system_prompt, soft_wrap=True, id="set-system-prompt"
                )
                for field in FIELDS:
                    value = _get(self.settings, field.key)
                    with Horizontal(classes="field-row"):
                        yield Label(field.label, classes="field-label")
                        yield Input(
                            "" if value is None else str(value), id=field.widget_id, compact=True
                        )
                        yield Static(field.hint, classes="field-hint", markup=False)
                yield Label("Tool rules (calls that run without asking)", classes="section-label")
                yield Vertical(*self._rule_rows(), id="tool-rules")
            yield Static("", id="settings-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (Ctrl+S)", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    @property
    def rules(self) -> dict[str, str]:
        """Per tool, ``allow`` or ``deny``: what saving keeps."""
        return {k: v for k, v in self.settings.tools.rules.items() if k not in self.revoked}

    def _rule_rows(self) -> list[Widget]:
        if not self.rules:
            hint = "None yet: “Always allow this tool” on an approval card adds one."
            return [Static(hint, classes="field-hint", markup=False)]
        return [
            Horizontal(
                Static(
                    Content.assemble(safe_for_terminal(name), (f"  {rule}", "dim")),
                    classes="rule-name",
                ),
                RevokeButton(name),
                classes="field-row tool-rule",
            )
            for name, rule in sorted(self.rules.items())
        ]

    def on_mount(self) -> None:
        self.query_one("#set-system-prompt", TextArea).focus()

    @on(Button.Pressed, ".revoke-rule")
    async def _revoke(self, event: Button.Pressed) -> None:
        """Revoke a rule (kept out when the settings are saved): its calls ask again."""
        if not isinstance(event.button, RevokeButton):
            return
        self.revoked.add(event.button.tool)
        box = self.query_one("#tool-rules", Vertical)
        await box.remove_children()
        await box.mount_all(self._rule_rows())

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#save")
    @on(Input.Submitted)
    def action_save(self) -> None:
        try:
            result = self.collect()
        except ValueError as exc:
            self.query_one("#settings-error", Static).update(f"not saved: {exc}")
            return
        self.dismiss(result)

    def collect(self) -> tuple[Settings, bool]:
        """The edited settings; ValueError naming the first bad field."""
        updated = self.settings.model_copy(deep=True)
        updated.chat.system_prompt = self.query_one("#set-system-prompt", TextArea).text
        updated.tools.rules = dict(self.rules)  # type: ignore[arg-type]
        reload_model = False
        for field in FIELDS:
            value = parse_field(field, self.query_one(f"#{field.widget_id}", Input).value)
            section, name = field.key.split(".")
            try:
                setattr(getattr(updated, section), name, value)
            except ValidationError as exc:
                raise ValueError(f"{field.label.lower()}: {exc.errors()[0]['msg']}") from None
            if field.key in MODEL_KEYS and value != _get(self.settings, field.key):
                reload_model = True
        return updated, reload_model
