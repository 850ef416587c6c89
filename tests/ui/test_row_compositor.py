"""The chat screen's row-cropped compositor writes to the terminal exactly what Textual's own
compositor writes, for every kind of changed area, on the real chat screen mid-stream (a long
chat behind it, the sidebar open, the status line live). The one difference allowed is a cursor
move that writes nothing (Textual moves to the cell after a changed span when a widget it drew
in full starts there; ours did not draw that widget)."""

from __future__ import annotations

import random
import re
import types

from textual._compositor import ChopsUpdate, Compositor
from textual.geometry import Region

from chatapp.ui.row_compositor import RowCroppedCompositor
from tests.ui.conftest import GatedBackend, add_exchanges, settle, wait_for

REPLY = [f"word{i} " if i % 9 else "**bold** `code`\n\n" for i in range(80)]


IDLE_MOVE = re.compile(r"\x1b\[\d+;\d+H(?=\x1b\[\d+;\d+H|\n|$)")
"""A cursor move followed by another move, a new line or nothing: it writes nothing."""


def terminal_output(app, compositor: Compositor, changed: list[Region], stock: bool) -> str:
    """What a partial update of ``changed`` writes to the terminal, rendered by ``compositor``
    (or by Textual's own ``_get_renders`` on the same composition when ``stock``)."""
    if stock:
        compositor._get_renders = types.MethodType(Compositor._get_renders, compositor)
    try:
        compositor._dirty_regions = set(changed)
        update = compositor.render_partial_update()
        assert isinstance(update, ChopsUpdate)
        return IDLE_MOVE.sub("", update.render_segments(app.console))
    finally:
        compositor.__dict__.pop("_get_renders", None)


async def test_partial_updates_write_what_textuals_compositor_writes(make_app, store) -> None:
    conversation_id = add_exchanges(store, 30)
    backend = GatedBackend(pause_after=60)
    backend.enqueue(REPLY)
    app = make_app(backend, conversation_id=conversation_id)
    async with app.run_test(size=(110, 34)) as pilot:
        await settle(pilot)
        screen = app.chat_screen
        screen.prompt.set_text("Tell me more.")
        await pilot.press("enter")
        await wait_for(pilot, backend.paused.is_set)
        await wait_for(pilot, lambda: screen.reply is not None and screen.reply.shown == 60)
        await pilot.pause(0.3)
        compositor = screen._compositor
        assert isinstance(compositor, RowCroppedCompositor)
        width, height = compositor.size
        reply = screen.replies.widget
        assert reply is not None
        areas = [
            [reply.region],  # the streaming reply
            [Region(0, height - 2, width, 1)],  # the status line
            [reply.region, Region(0, height - 2, width, 1)],  # both in one frame
            [Region(0, 0, width, height)],  # everything
            [Region(0, 5, 12, 3)],  # part of the sidebar
        ]
        rng = random.Random(7)
        for _ in range(40):
            x, y = rng.randrange(width), rng.randrange(height)
            w, h = rng.randint(1, width - x), rng.randint(1, min(6, height - y))
            areas.append([Region(x, y, w, h)])
        for _ in range(20):  # several areas at once (reply lines, the status line)
            areas.append([region for area in rng.sample(areas[5:45], 3) for region in area])
        for _ in range(10):  # more areas than are drawn one by one (a layout's moved widgets)
            areas.append([region for area in rng.sample(areas[5:45], 7) for region in area])
        for changed in areas:
            ours = terminal_output(app, compositor, changed, stock=False)
            theirs = terminal_output(app, compositor, changed, stock=True)
            assert ours == theirs, changed
        backend.release()
        await settle(pilot)
