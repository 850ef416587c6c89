"""The template picker (Ctrl+G, or "Run a prompt template" in the command palette).

Pick a template on the left; its variables become a form, the chat prompt's text becomes the
input, and Preview shows the exact text the model will receive: the conversation so far, the
template's system prompt and examples, and the rendered turn, after the model's own chat
template — prepared by the same session and budget that will send it. Run sends it in the open
conversation as a ``TurnRequest`` with the template and its variables (and the collection, when
documents are on); the stored message keeps the user's input and the request, so regenerating
or editing that turn, even after a restart, goes through the same template again.

Styles live in DEFAULT_CSS: this screen is a plug-in loaded through ``UIExtensions`` and keeps
to itself rather than adding rules to the app's stylesheet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

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
    from chatapp.session import TurnRequest
    from chatapp.ui.chat_context import ChatContext, TurnChoices
    from chatapp.ui.extensions import UIExtensions
    from chatapp.ui.generation import Reply
    from chatapp.ui.widgets.prompt import PromptInput

TEMPLATE_KEY = "ctrl+g"
COMMAND_TITLE = "Run a prompt template"


class TemplateHost(Protocol):
    """What the picker needs of the chat screen it runs for."""

    context: ChatContext
    choices: TurnChoices
    conversation_id: int | None

    @property
    def prompt(self) -> PromptInput: ...
    def reply_running(self) -> bool: ...
    def send_request(self, request: TurnRequest) -> Reply | None: ...


def register(ui: UIExtensions) -> None:
    ui.add_screen("templates", lambda app: TemplatePickerScreen(app.chat_screen))
    ui.add_command(
        COMMAND_TITLE,
        "Summarize, translate, classify, answer from a passage…: fill in a template, "
        "preview the exact prompt, run it",
        "app.open_screen('templates')",
        key=TEMPLATE_KEY,
        group="Templates",
    )


class TemplatePickerScreen(ModalScreen[None]):
    """Choose a template, fill it in, preview, run."""

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

    def __init__(self, host: TemplateHost) -> None:
        super().__init__()
        self.host = host
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
        self.query_one("#template-input", TextArea).load_text(self.host.prompt.expanded_text())
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
        if self.host.reply_running():
            self.notify(
                "A reply is still being written: press Esc to stop it first.", severity="warning"
            )
            return
        self._work(self.current, self.variables(), self.input_text(), run=True)

    @on(Button.Pressed, "#template-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def request(self, template: Template, variables: dict[str, str], text: str) -> TurnRequest:
        """The turn Run sends: this template and its variables, the collection when documents
        are on."""
        from chatapp.session import TemplateCall

        request = self.host.choices.request(text)
        request.template = TemplateCall(template.name, dict(variables))
        return request

    @work(thread=True, exclusive=True, group="template-preview")
    def _work(self, template: Template, variables: dict[str, str], text: str, run: bool) -> None:
        from chatapp.session.preparation import check_template

        app = self.app
        request = self.request(template, variables, text)
        try:
            check_template(request)
            preview = None if run else self._preview_text(request)
        except ChatappError as exc:
            app.call_from_thread(self._show_error, exc.message)
            return
        if run:
            app.call_from_thread(self._send, request)
        else:
            text, notes = preview or ("", [])
            app.call_from_thread(self._show_preview, text, notes)

    def _preview_text(self, request: TurnRequest) -> tuple[str, list[str]]:
        """What the session would send now: history + this turn, through the chat template."""
        context = self.host.context
        backend = context.model.backend
        if backend is None or context.settings is None:
            from chatapp.session.preparation import render_template

            turn = render_template(request)
            assert turn is not None
            lines = [f"[{m.role}]\n{m.content}" for m in turn.messages()]
            shown = "\n\n".join(lines)
            return f"(the model is still loading: shown without its chat template)\n\n{shown}", []
        session = context.session(self.host.conversation_id)
        prepared = session.prepare(request, session.leaf_id())
        if prepared.plan is None:
            return prepared.refusal or "", prepared.notes
        return backend.format_chat(prepared.plan.messages), prepared.notes

    def _show_error(self, message: str) -> None:
        self.query_one("#template-error", Static).update(message)

    def _show_preview(self, text: str, notes: list[str]) -> None:
        self.query_one("#template-error", Static).update("\n".join(f"note: {n}" for n in notes))
        self.query_one("#template-preview", TextArea).load_text(text)

    def _send(self, request: TurnRequest) -> None:
        self.dismiss(None)
        self.host.prompt.clear_prompt()
        self.host.send_request(request)


def variable_field(name: str, spec: VariableSpec) -> Input | Select[str] | TextArea:
    """The form field for one template variable, filled with its default."""
    from chatapp.prompting.languages import LANGUAGES

    field_id = f"var-{name}"
    default = "" if spec.default is None else str(spec.default)
    if spec.type in ("choice", "language"):
        values = list(spec.option_texts()) if spec.type == "choice" else list(LANGUAGES)
        if spec.type == "language" and default:
            default = spec.coerce(name, default)
        choices = [(v, v) for v in values]
        blank = not spec.is_required or default not in values
        if default in values:
            return Select(choices, value=default, allow_blank=blank, id=field_id)
        return Select(choices, allow_blank=True, id=field_id)
    if spec.type == "number":
        return Input(default, type="number", id=field_id)
    return TextArea(default, id=field_id, soft_wrap=True, classes="template-text")
