"""Tools in the chat: the approval card (allow once, always, deny, Esc), calls shown folded live
and when a conversation is reopened, the tools toggle (F5) and revoking rules in settings.
The FakeBackend scripts the model's calls; the tool is a real ToolProvider that is not a
built-in (so it needs the user's yes), run through the real registry, gate and store."""

from __future__ import annotations

import tomllib

from textual.widgets import Button, SelectionList

from chatapp import paths
from chatapp.config import Settings
from chatapp.domain import CancelToken, ToolCall, ToolSpec
from chatapp.engine.fake import FakeBackend
from chatapp.session import ChatSession, TurnRequest, consume
from chatapp.session.tool_loop import ToolUse
from chatapp.storage import ConversationStore
from chatapp.tools.approval import ToolGate
from chatapp.tools.registry import ToolOutput, ToolRegistry
from chatapp.ui.screens.settings import RevokeButton, SettingsScreen
from chatapp.ui.screens.tool_approval import ToolApprovalScreen
from chatapp.ui.screens.tool_picker import ToolPickerScreen
from chatapp.ui.widgets.message import MessageWidget
from chatapp.ui.widgets.tool_call import ToolCallWidget
from tests.ui.conftest import settle, wait_for


class Notes:
    """A tool server that needs approval: notes.add records what it got."""

    server = "notes"

    def __init__(self) -> None:
        self.added: list[str] = []
        self.closed = False

    def specs(self) -> list[ToolSpec]:
        schema = {"type": "object", "properties": {"text": {"type": "string"}}}
        return [ToolSpec("notes.add", "Add a note [b]bold[/b].", schema, server="notes")]

    def call(self, tool: str, arguments: dict, cancel: CancelToken | None) -> ToolOutput:
        self.added.append(arguments["text"])
        return ToolOutput(f"added note {len(self.added)}: {arguments['text']}")

    def close(self) -> None:
        self.closed = True


def add_note(text: str = "milk [red]x[/red]", i: int = 1) -> ToolCall:
    return ToolCall(f"call_{i}", "notes.add", {"text": text})


async def start(app, pilot, notes: Notes) -> None:
    await settle(pilot)
    tools = app.context.tools
    assert tools is not None
    tools.registry.providers.append(notes)
    app.chat_screen.set_tools(["notes"])


async def ask(app, pilot, text: str) -> ToolApprovalScreen:
    app.chat_screen.prompt.set_text(text)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, ToolApprovalScreen))
    return app.screen


def tool_rows(store: ConversationStore) -> list:
    [conversation] = store.list_conversations()
    return [m for m in store.thread(conversation.id) if m.role == "tool"]


async def test_allow_once_runs_the_call_and_shows_it_folded(make_app, store) -> None:
    backend = FakeBackend()
    backend.enqueue("", tool_calls=[add_note()])
    backend.enqueue("Noted.")
    notes = Notes()
    app = make_app(backend)
    async with app.run_test(size=(100, 40)) as pilot:
        await start(app, pilot, notes)
        card = await ask(app, pilot, "remember milk")
        shown = str(card.query_one("#approval-arguments").render())
        assert '"text": "milk [red]x[/red]"' in shown  # the JSON as it is, not markup
        assert "notes.add" in str(card.query_one("#approval-tool").render())
        await pilot.click("#allow-once")
        await settle(pilot)
        assert notes.added == ["milk [red]x[/red]"]
        [row] = tool_rows(store)
        assert row.content == "added note 1: milk [red]x[/red]"
        assert row.turn["verdict"] == "allowed once by you"
        # The call is folded between the question and the answer.
        view = app.chat_screen.chat_view
        kinds = [type(w).__name__ for w in view.children if not w.has_class("notice")]
        assert kinds == ["MessageWidget", "ToolCallWidget", "MessageWidget"]
        [call] = view.query(ToolCallWidget)
        assert call.collapsed
        assert call.title_text.startswith("notes.add · ")
        assert call.title_text.endswith(" s")
        assert call.message_id == row.id
        assert [w.content for w in view.message_widgets()] == ["remember milk", "Noted."]
        # Unfolded: the arguments and the result.
        await pilot.click(f"#{call.id} CollapsibleTitle" if call.id else "CollapsibleTitle")
        await pilot.pause()
        assert not call.collapsed
        body = " ".join(str(s.render()) for s in call.query(".tool-arguments, .tool-result"))
        assert "milk [red]x[/red]" in body
        assert "added note 1" in body
        # The rule was not stored: the next call asks again.
        assert app.settings.tools.rules == {}


async def test_deny_does_not_run_and_the_model_is_told(make_app, store) -> None:
    backend = FakeBackend()
    backend.enqueue("", tool_calls=[add_note()])
    backend.enqueue("I could not add it.")
    notes = Notes()
    app = make_app(backend)
    async with app.run_test(size=(100, 40)) as pilot:
        await start(app, pilot, notes)
        await ask(app, pilot, "remember milk")
        await pilot.press("d")
        await settle(pilot)
        assert notes.added == []
        told = backend.calls[-1].messages[-1]
        assert told.role == "tool"
        assert "did not allow" in told.content
        [row] = tool_rows(store)
        assert row.turn["status"] == "denied"
        [call] = app.chat_screen.chat_view.query(ToolCallWidget)
        assert call.title_text == "notes.add · denied"
        assert app.chat_screen.chat_view.message_widgets()[-1].content == "I could not add it."


async def test_always_stores_a_rule_and_the_next_call_runs_without_asking(make_app, store) -> None:
    backend = FakeBackend()
    backend.enqueue("", tool_calls=[add_note("one")])
    backend.enqueue("Added.")
    backend.enqueue("", tool_calls=[add_note("two", 2)])
    backend.enqueue("Added again.")
    notes = Notes()
    app = make_app(backend)
    async with app.run_test(size=(100, 40)) as pilot:
        await start(app, pilot, notes)
        await ask(app, pilot, "add one")
        await pilot.click("#allow-always")
        await settle(pilot)
        assert app.settings.tools.rules == {"notes.add": "allow"}
        saved = tomllib.loads(paths.config_file().read_text(encoding="utf-8"))
        assert saved["tools"]["rules"] == {"notes.add": "allow"}
        cards = len(app.context.approver.cards)
        app.chat_screen.prompt.set_text("add two")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(backend.calls) == 4)
        await settle(pilot)
        assert notes.added == ["one", "two"]
        assert len(app.context.approver.cards) == cards  # not asked again
        assert tool_rows(store)[-1].turn["verdict"] == "allowed by your rule"


async def test_escape_on_the_card_denies_and_stops_the_reply(make_app, store) -> None:
    backend = FakeBackend()
    backend.enqueue("", tool_calls=[add_note()])
    backend.enqueue("never sent")
    notes = Notes()
    app = make_app(backend)
    async with app.run_test(size=(100, 40)) as pilot:
        await start(app, pilot, notes)
        await ask(app, pilot, "remember milk")
        await pilot.press("escape")
        await settle(pilot)
        assert notes.added == []
        assert len(backend.calls) == 1  # stopped: the model is not asked again
        assert not isinstance(app.screen, ToolApprovalScreen)


async def test_stopping_the_reply_takes_the_card_down(make_app, store) -> None:
    backend = FakeBackend()
    backend.enqueue("", tool_calls=[add_note()])
    notes = Notes()
    app = make_app(backend)
    async with app.run_test(size=(100, 40)) as pilot:
        await start(app, pilot, notes)
        await ask(app, pilot, "remember milk")
        app.chat_screen.replies.stop()
        await settle(pilot)
        assert not isinstance(app.screen, ToolApprovalScreen)
        assert notes.added == []


def stored_tool_conversation(store: ConversationStore) -> int:
    """A conversation written by the real tool loop: a step that only called a tool, its
    result, a step that spoke and called again, its result, the answer."""
    backend = FakeBackend()
    backend.enqueue("", tool_calls=[ToolCall("c1", "math.calculate", {"expression": "2+3"})])
    backend.enqueue("Let me check.", tool_calls=[ToolCall("c2", "clock.now", {})])
    backend.enqueue("2+3 = 5.")
    tools = ToolUse.from_settings(Settings())
    session = ChatSession(backend, store, tools=tools)
    consume(session.send(TurnRequest("sum?", tools=["math", "clock"]), CancelToken()))
    tools.close()
    assert session.conversation_id is not None
    return session.conversation_id


async def test_a_reopened_conversation_shows_its_calls_folded(make_app, store) -> None:
    conversation_id = stored_tool_conversation(store)
    app = make_app(FakeBackend(), conversation_id=conversation_id)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        view = app.chat_screen.chat_view
        shown = [
            w.content if isinstance(w, MessageWidget) else w.title_text
            for w in view.children
            if isinstance(w, MessageWidget | ToolCallWidget)
        ]
        assert shown[0] == "sum?"
        assert shown[1].startswith("math.calculate · ")
        assert shown[2] == "Let me check."
        assert shown[3].startswith("clock.now · ")
        assert shown[4] == "2+3 = 5."
        assert len(shown) == 5  # the step with no text of its own is not an empty message
        math = view.query(ToolCallWidget).first()
        assert "2+3 = 5" in str(math.query_one(".tool-result").render())


async def test_a_live_step_that_speaks_gets_its_own_widget(make_app, store) -> None:
    backend = FakeBackend()
    backend.enqueue("Let me look.", tool_calls=[ToolCall("c1", "clock.now", {})])
    backend.enqueue("It is now.")
    app = make_app(backend)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        app.chat_screen.set_tools(["clock"])
        app.chat_screen.prompt.set_text("time?")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(backend.calls) == 2)
        await settle(pilot)
        view = app.chat_screen.chat_view
        shown = [
            w.content if isinstance(w, MessageWidget) else w.title_text
            for w in view.children
            if isinstance(w, MessageWidget | ToolCallWidget)
        ]
        assert shown[0] == "time?"
        assert shown[1] == "Let me look."
        assert shown[2].startswith("clock.now · ")
        assert shown[3] == "It is now."
        step, answer = view.message_widgets()[1:]
        assert step.message_id is not None and step.status == "complete"
        assert [m.id for m in view.thread] == [
            m.id for m in store.thread(app.chat_screen.conversation_id)
        ]


async def test_the_toggle_sets_the_tools_each_turn_offers(make_app, store) -> None:
    backend = FakeBackend()
    backend.enqueue("one")
    backend.enqueue("two")
    app = make_app(backend)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, ToolPickerScreen))
        picker = app.screen.query_one(SelectionList)
        assert [picker.get_option_at_index(i).value for i in range(picker.option_count)] == [
            "clock",
            "math",
            "documents",
        ]
        picker.select("math")
        picker.select("clock")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.chat_screen.choices.tools == ["clock", "math"]
        assert app.chat_screen.header.fields["tools"] == "clock, math"
        app.chat_screen.prompt.set_text("hi")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(backend.calls) == 1)
        await settle(pilot)
        assert sorted(t.name for t in backend.calls[-1].params.tools) == [
            "clock.now",
            "math.calculate",
        ]
        app.chat_screen.set_tools([])
        assert "tools" not in app.chat_screen.header._fields_content().plain
        app.chat_screen.prompt.set_text("again")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(backend.calls) == 2)
        await settle(pilot)
        assert backend.calls[-1].params.tools == []


async def test_revoking_a_rule_in_settings_removes_it(make_app, store, settings) -> None:
    settings.tools.rules = {"notes.add": "allow", "clock.now": "deny"}
    app = make_app(FakeBackend())
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        tools = app.context.tools
        assert tools is not None and tools.gate.rules["notes.add"] == "allow"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
        revoke = next(b for b in app.screen.query(RevokeButton) if b.tool == "notes.add")
        revoke.press()
        await pilot.pause()
        assert [b.tool for b in app.screen.query(RevokeButton)] == ["clock.now"]
        app.screen.query_one("#save", Button).press()
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        assert app.settings.tools.rules == {"clock.now": "deny"}
        assert tools.gate.rules == {"clock.now": "deny"}  # the next call asks again
        saved = tomllib.loads(paths.config_file().read_text(encoding="utf-8"))
        assert saved["tools"]["rules"] == {"clock.now": "deny"}


def test_the_gate_asks_through_the_card_only_for_tools_without_a_rule() -> None:
    asked: list[str] = []

    class Asker:
        def ask(self, call: ToolCall, spec: ToolSpec) -> str:
            asked.append(call.name)
            return "deny"

    gate = ToolGate(rules={"notes.add": "allow"}, approver=Asker())  # type: ignore[arg-type]
    registry = ToolRegistry([Notes()])
    assert gate.decide(add_note(), registry.spec("notes.add")).allowed  # type: ignore[arg-type]
    assert asked == []


async def test_escape_sequences_in_a_call_are_shown_escaped(make_app, store) -> None:
    backend = FakeBackend()
    backend.enqueue(
        "",
        tool_calls=[
            add_note("\x1b]52;c;aGk=\x07\x1b[2J"),
            ToolCall("call_2", "\x1b[2Jnotes.evil", {}),  # no such tool: not asked, shown
        ],
    )
    backend.enqueue("ok")
    app = make_app(backend)
    async with app.run_test(size=(100, 40)) as pilot:
        await start(app, pilot, Notes())
        card = await ask(app, pilot, "note")
        shown = str(card.query_one("#approval-arguments").render())
        assert "\x1b" not in shown and "\x07" not in shown
        assert "\\x1b" in shown or "\\u001b" in shown
        description = str(card.query_one("#approval-description").render())
        assert "[b]bold[/b]" in description  # a server's text is not markup
        await pilot.press("o")
        await settle(pilot)
        note, evil = app.chat_screen.chat_view.query(ToolCallWidget)
        body = " ".join(str(s.render()) for s in note.query(".tool-arguments, .tool-result"))
        assert "added note 1: " in body
        assert "\x1b" not in body and "\x07" not in body
        title = str(evil.query_one("CollapsibleTitle").render())
        assert "notes.evil" in title and "\x1b" not in title


async def test_a_bad_mcp_json_leaves_the_builtins_and_says_why(make_app, store) -> None:
    from chatapp.tools.mcp_config import mcp_file

    path = mcp_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"mcpServers": {', encoding="utf-8")
    app = make_app(FakeBackend())
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, ToolPickerScreen))
        picker = app.screen.query_one(SelectionList)
        assert picker.option_count == 3  # the built-ins still work
        problem = app.context.tools_problem
        assert problem is not None and "mcp.json" in problem
        hints = " ".join(str(s.render()) for s in app.screen.query(".field-hint"))
        assert "mcp.json" in hints


async def test_tool_servers_are_not_started_before_use_and_close_with_the_app(
    make_app, store
) -> None:
    app = make_app(FakeBackend())
    notes = Notes()
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        assert app.context._tools is None  # nothing built for the first frame or startup
        await start(app, pilot, notes)
    app.close_resources()
    assert notes.closed
    assert app.context._tools is None


async def test_a_call_id_reused_in_a_later_step_is_a_call_of_its_own(make_app, store) -> None:
    backend = FakeBackend()
    backend.enqueue("", tool_calls=[ToolCall("call_1", "math.calculate", {"expression": "1+1"})])
    backend.enqueue("", tool_calls=[ToolCall("call_1", "math.calculate", {"expression": "2+2"})])
    backend.enqueue("done")
    app = make_app(backend)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        app.chat_screen.set_tools(["math"])
        app.chat_screen.prompt.set_text("sums")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(backend.calls) == 3)
        await settle(pilot)
        first, second = app.chat_screen.chat_view.query(ToolCallWidget)
        assert "1+1 = 2" in str(first.query_one(".tool-result").render())
        assert "2+2 = 4" in str(second.query_one(".tool-result").render())
        assert [first.message_id, second.message_id] == [r.id for r in tool_rows(store)]
