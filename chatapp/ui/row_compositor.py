"""The chat screen's compositor: a streamed frame draws the rows that changed, not the screen.

Textual's compositor answers a partial update (a few lines of the reply, the status line) by
asking every widget whose *container* overlaps the changed area for *all* of its visible lines,
and then keeps only the changed rows: each streamed frame re-drew the screen background, the
sidebar, the chat view and every message around the reply, ~90 lines through styles, filters
and strip division (measured in benchmarks/ui.py: about a third of the UI's CPU while a reply
streamed). ``RowCroppedCompositor`` asks a widget only for the rows of the changed areas it
overlaps, and not at all where a widget in front of it covers all of that area (the reply's
message, the chat view and the screen behind a streamed line: the front widget's cells are the
ones written). What it draws for the changed areas is what Textual's own compositor draws; the
test compares the two on the real chat screen for many areas, so a Textual release that changes
the compositor's insides shows up there. Full-screen renders (a layout, a resize, a screenshot)
are Textual's own.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual._compositor import ChopsUpdate, Compositor
from textual.geometry import Region
from textual.strip import Strip

MAX_AREAS = 4
"""A partial update of more changed areas than this is drawn as their bounding box."""


class RowCroppedCompositor(Compositor):
    """Textual's compositor; a partial update renders only the rows and widgets it changes."""

    _changed: list[Region] | None = None
    """The areas of the partial update being rendered (Textual keeps only their bounding box)."""

    def render_partial_update(self) -> ChopsUpdate | None:
        self._changed = list(self._dirty_regions)
        try:
            return super().render_partial_update()
        finally:
            self._changed = None

    def _get_renders(
        self, crop: Region | None = None
    ) -> Iterable[tuple[Region, Region, list[Strip]]]:
        if not crop:
            yield from super()._get_renders(crop)
            return
        width = self.size.width
        areas = [area.intersection(crop) for area in self._changed or (crop,)]
        # A few areas (a streamed frame: the reply's lines, the status line) are drawn each on
        # its own; many (a layout marks every moved widget) as the one area around them all:
        # matching every widget against each of them cost more than it saved.
        changed = areas if len(areas) <= MAX_AREAS else [crop]
        # Widgets come front to back and the first cells drawn for a place are the ones
        # written, so a widget is drawn for an area unless one drawn for it covers it there.
        drawn: list[list[Region]] = [[] for _ in changed]
        for widget, (region, clip) in self.visible_widgets.items():
            visible = region.intersection(clip)
            for area, front in zip(changed, drawn, strict=True):
                need = visible.intersection(area)
                if not need or any(done.contains_region(need) for done in front):
                    continue
                front.append(visible)
                # Whole rows of the area: the chops of a row are cut at widget edges, so a
                # widget drawn on a row is drawn across its full visible width there.
                x, y, w, h = visible.intersection(Region(0, area.y, width, area.height))
                lines = widget.render_lines(Region(x - region.x, y - region.y, w, h))
                yield region, Region(x, y, w, h), lines
