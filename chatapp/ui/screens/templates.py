"""The template picker (Ctrl+G, or "Run a prompt template" in the command palette).

Pick a template on the left; its variables become a form, the chat prompt's text becomes the
input, and Preview shows the exact text the model will receive: the conversation so far, the
template's system prompt and examples, and the rendered turn, after the model's own chat
template (``backend.format_chat``). Run sends it in the open conversation; the stored message
keeps the user's input and records the template. Regenerating that reply applies the same
template and variables again.

Styles live in DEFAULT_CSS: this screen is a plug-in loaded through ``UIExtensions`` and keeps
to itself rather than adding rules to the app's stylesheet.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Select, Static, TextArea
from textual.widgets.option_list import Option

from chatapp.errors import ChatappError

if TYPE_CHECKING:
    from chatapp.prompting.schema import Template, VariableSpec
    from chatapp.prompting.turn import TemplateTurn
    from chatapp.session import TurnOptions
    from chatapp.ui.app import ChatApp
    from chatapp.ui.extensions import UIExtensions

TEMPLATE_KEY = "ctrl+g"
COMMAND_TITLE = "Run a prompt template"

# Per app: the input text of a template turn → (template name, variables), so a regenerate of
# that turn (which only carries the stored text) can be sent through the same template again.
_recent: weakref.WeakKeyDictionary[Any, dict[str, tuple[str, dict[str, str]]]] = (
    weakref.WeakKeyDictionary()
)


def register(ui: UIExtensions) -> None:
    ui.add_screen("templates", lambda app: TemplatePickerScreen())
    ui.add_command(
        COMMAND_TITLE,
        "Summarize, translate, classify, answer from a passage…: fill in a template, "
        "preview the exact prompt, run it",
        "app.open_screen('templates')",
        key=TEMPLATE_KEY,
        group="Templates",
    )
    ui.add_turn_preparer(reapply_template)


def turn_options(turn: TemplateTurn, sources: list[dict[str, Any]] | None = None) -> TurnOptions:
    """What the session needs to send a template turn (and record the template)."""
    from chatapp.session import TurnOptions

    return TurnOptions(
        template=turn.name,
        model_text=turn.user_text,
        system_prompt=turn.system_prompt,
        params=dict(turn.params),
        examples=list(turn.examples),
        sources=sources,
    )


def reapply_template(app: ChatApp, text: str, options: TurnOptions) -> TurnOptions:
    """Turn preparer: a regenerated template turn goes through its template again."""
    if options.template is not None or options.model_text is not None:
        return options
    remembered = _recent.get(app, {}).get(text)
    conversation_id = app.chat_screen.conversation_id
    if remembered is None or conversation_id is None or app.store is None:
        return options
    last_user = next(
        (m for m in reversed(app.store.thread(conversation_id)) if m.role == "user"), None
    )
    if last_user is None or last_user.template != remembered[0] or last_user.content != text:
        return options
    from chatapp.prompting import build_template_turn, get_template

    turn = build_template_turn(
        get_template(remembered[0]), remembered[1], text, backend=app.backend
    )
    return turn_options(turn, options.sources)


class TemplatePickerScreen(ModalScreen[None]):
    """Choose a template, fill it in, preview, run."""

    app: ChatApp  # type: ignore[assignment]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("f5", "preview", "Preview"),
        Binding("ctrl+r", "run", "Run"),
    ]

    DEFAULT_CSS = """
    TemplatePickerScreen { align: center middle; }
    #template-picker { width: 96%; height: 94%; max-width: 150; padding: 0 1;
        border: round $primary; background: $surface; }
    #template-body { height: 1fr; }
    #template-list { width: 32; height: 1fr; margin-right: 1; }
    #template-form { width: 1fr; height: 1fr; }
    #template-about { color: $text-muted; margin-bottom: 1; }
    #template-vars { height: auto; }
    .template-field-label { margin-top: 1; }
    .template-text { height: 4; }
    #template-input { height: 6; }
    #template-error { color: $error; height: auto; }
    #template-preview { height: 14; }
    #template-buttons { height: auto; align-horizontal: right; }
    #template-buttons Button { margin-left: 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.templates: dict[str, Template] = {}
        self.current: Template | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="template-picker"):
            yield Label("Run a prompt template", classes="dialog-title")
            with Horizontal(id="template-body"):
                yield OptionList(id="template-list")
                with VerticalScroll(id="template-form"):
                    yield Static("", id="template-about", markup=False)
                    yield Vertical(id="template-vars")
                    yield Label("Input", classes="template-field-label")
                    yield TextArea("", id="template-input", soft_wrap=True)
                    yield Static("", id="template-error", markup=False)
                    yield Label(
                        "Preview: the exact text the model receives (F5)",
                        classes="template-field-label",
                    )
                    yield TextArea("", id="template-preview", read_only=True, soft_wrap=True)
            with Horizontal(id="template-buttons"):
                yield Button("Preview", id="template-preview-button")
                yield Button("Run", variant="primary", id="template-run")
                yield Button("Cancel", id="template-cancel")

    def on_mount(self) -> None:
        from chatapp.prompting.loader import load_all

        templates, problems = load_all()
        for problem in problems:
            self.notify(f"template {problem}", severity="warning", timeout=8)
        self.templates = {t.name: t for t in templates}
        options = self.query_one("#template-list", OptionList)
        for template in templates:
            options.add_option(Option(f"{template.name}\n  {template.title}", id=template.name))
        self.query_one("#template-input", TextArea).load_text(
            self.app.chat_screen.prompt.expanded_text()
        )
        if templates:
            options.highlighted = 0
        options.focus()

    # -- the form -------------------------------------------------------------------------

    @on(OptionList.OptionHighlighted, "#template-list")
    async def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        name = event.option.id
        if name is not None and name in self.templates:
            await self.show_template(self.templates[name])

    @on(OptionList.OptionSelected, "#template-list")
    def _selected(self) -> None:
        self.query_one("#template-input", TextArea).focus()

    async def show_template(self, template: Template) -> None:
        """Show the template's description and a field per variable."""
        from chatapp.prompting.schema import INPUT

        self.current = template
        about = f"{template.title}\n{template.description}".strip()
        self.query_one("#template-about", Static).update(about)
        self.query_one("#template-error", Static).update("")
        self.query_one("#template-preview", TextArea).load_text("")
        holder = self.query_one("#template-vars", Vertical)
        await holder.remove_children()
        fields = []
        for name, spec in template.all_variables().items():
            if name == INPUT:
                continue
            need = "required" if spec.is_required else "optional"
            label = f"{name} ({spec.type}, {need})" + (
                f": {spec.description}" if spec.description else ""
            )
            fields += [
                Label(label, classes="template-field-label", markup=False),
                variable_field(name, spec),
            ]
        await holder.mount_all(fields)

    def variables(self) -> dict[str, str]:
        """The form's values; blank fields are left out so defaults apply."""
        values: dict[str, str] = {}
        for widget in self.query_one("#template-vars", Vertical).children:
            name = (widget.id or "").removeprefix("var-")
            if not widget.id or not widget.id.startswith("var-"):
                continue
            if isinstance(widget, Select):
                value = "" if widget.value is Select.BLANK else str(widget.value)
            elif isinstance(widget, TextArea):
                value = widget.text
            else:
                value = widget.value if isinstance(widget, Input) else ""
            if value.strip():
                values[name] = value
        return values

    def input_text(self) -> str:
        return self.query_one("#template-input", TextArea).text

    # -- preview and run ------------------------------------------------------------------

    @on(Button.Pressed, "#template-preview-button")
    def action_preview(self) -> None:
        if self.current is not None:
            self._work(self.current, self.variables(), self.input_text(), run=False)

    @on(Button.Pressed, "#template-run")
    def action_run(self) -> None:
        if self.current is None:
            return
        if self.app.chat_screen.reply_running():
            self.notify(
                "A reply is still being written: press Esc to stop it first.", severity="warning"
            )
            return
        self._work(self.current, self.variables(), self.input_text(), run=True)

    @on(Button.Pressed, "#template-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @work(thread=True, exclusive=True, group="template-preview")
    def _work(self, template: Template, variables: dict[str, str], text: str, run: bool) -> None:
        from chatapp.prompting import build_template_turn

        app = self.app
        try:
            turn = build_template_turn(template, variables, text, backend=app.backend)
            preview = None if run else self._preview_text(turn, text)
        except ChatappError as exc:
            app.call_from_thread(self._show_error, exc.message)
            return
        if run:
            app.call_from_thread(self._send, turn, variables, text)
        else:
            app.call_from_thread(self._show_preview, preview or "", turn.notes)

    def _preview_text(self, turn: TemplateTurn, text: str) -> str:
        """What the session would send now: history + this turn, through the chat template."""
        from chatapp.engine.factory import generation_params
        from chatapp.session import ChatSession

        app = self.app
        backend, store, settings = app.backend, app.store, app.settings
        options = turn_options(turn)
        if backend is None or store is None or settings is None:
            lines = [f"[{m.role}]\n{m.content}" for m in turn.messages()]
            return (
                "(the model is still loading: shown without its chat template)\n\n"
                + "\n\n".join(lines)
            )
        conversation_id = app.chat_screen.conversation_id
        session = ChatSession(
            backend,
            store,
            conversation_id=conversation_id,
            system_prompt=None if conversation_id is not None else settings.chat.system_prompt,
            params=generation_params(settings),
        )
        parent = (
            store.get_conversation(conversation_id).active_leaf_id
            if conversation_id is not None
            else None
        )
        plan = session.plan(text, options, parent)
        return backend.format_chat(plan.messages)

    def _show_error(self, message: str) -> None:
        self.query_one("#template-error", Static).update(message)

    def _show_preview(self, text: str, notes: list[str]) -> None:
        self.query_one("#template-error", Static).update("\n".join(f"note: {n}" for n in notes))
        self.query_one("#template-preview", TextArea).load_text(text)

    def _send(self, turn: TemplateTurn, variables: dict[str, str], text: str) -> None:
        for note in turn.notes:
            self.notify(note, severity="information")
        _recent.setdefault(self.app, {})[text] = (turn.name, dict(variables))
        self.dismiss(None)
        self.app.chat_screen.prompt.clear_prompt()
        self.app.send_turn(text, turn_options(turn))


def variable_field(name: str, spec: VariableSpec) -> Input | Select[str] | TextArea:
    """The form field for one template variable, filled with its default."""
    from chatapp.prompting.languages import LANGUAGES
    from chatapp.prompting.render import coerce_variable

    field_id = f"var-{name}"
    default = "" if spec.default is None else str(spec.default)
    if spec.type in ("choice", "language"):
        values = list(spec.option_texts()) if spec.type == "choice" else list(LANGUAGES)
        if spec.type == "language" and default:
            default = coerce_variable(name, spec, default)
        choices = [(v, v) for v in values]
        blank = not spec.is_required or default not in values
        if default in values:
            return Select(choices, value=default, allow_blank=blank, id=field_id)
        return Select(choices, allow_blank=True, id=field_id)
    if spec.type == "number":
        return Input(default, type="number", id=field_id)
    return TextArea(default, id=field_id, soft_wrap=True, classes="template-text")
