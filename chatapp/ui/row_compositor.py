"""The chat screen's compositor: a streamed frame draws the rows that changed, not the screen.

Textual's compositor answers a partial update (a few lines of the reply, the status line) by
asking every widget whose *container* overlaps the changed area for *all* of its visible lines,
and then keeps only the changed rows: each streamed frame re-drew the screen background, the
sidebar, the chat view and every message around the reply, ~90 lines through styles, filters
and strip division (measured in benchmarks/ui.py: about a third of the UI's CPU while a reply
streamed). ``RowCroppedCompositor`` asks only the widgets that overlap the changed area, and
only for the rows of it. What it draws for those rows is what Textual's own compositor draws;
the test compares the two on the real chat screen for many areas, so a Textual release that
changes the compositor's insides shows up there. Full-screen renders (a layout, a resize, a
screenshot) are Textual's own.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual._compositor import Compositor
from textual.geometry import Region
from textual.strip import Strip


class RowCroppedCompositor(Compositor):
    """Textual's compositor; a partial update renders only the rows and widgets it changes."""

    def _get_renders(
        self, crop: Region | None = None
    ) -> Iterable[tuple[Region, Region, list[Strip]]]:
        if not crop:
            yield from super()._get_renders(crop)
            return
        # Whole rows of the changed area: the chops of a row are cut at widget edges, so a
        # widget drawn on a row is drawn across its full visible width there.
        rows = Region(0, crop.y, self.size.width, crop.height)
        overlaps = crop.overlaps
        for widget, (region, clip) in self.visible_widgets.items():
            visible = region.intersection(clip)
            if not overlaps(visible):
                continue
            x, y, width, height = visible.intersection(rows)
            if width and height:
                lines = widget.render_lines(Region(x - region.x, y - region.y, width, height))
                yield region, Region(x, y, width, height), lines
