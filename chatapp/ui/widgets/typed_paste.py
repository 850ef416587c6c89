"""Telling a paste the terminal types as keys from keys a person types.

A terminal without bracketed paste sends a paste as ordinary keys. What gives it away is timing:
the terminal delivers them microseconds apart, a person (or an input method committing a
syllable) never more than a few within ``PROGRAM_KEY_GAP_S`` of each other. ``KeyTiming``
counts keys in a row that came that close (by the time the terminal delivered them, not when
the app got round to them); from ``BURST_KEYS`` on they are a burst, which the prompt inserts
together (``chatapp.ui.widgets.prompt``). A burst lasts until a pause of ``BURST_PAUSE_S``: the
app's own work (a re-wrap holding the interpreter) can delay the terminal's reader that long. ``TypedBurst`` is where one burst's text sits in the
prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.widgets.text_area import Location, Selection

PROGRAM_KEY_GAP_S = 0.01
"""Keys closer together than this come from a program (people's keys are ~50 ms or more apart)."""
BURST_KEYS = 4
"""This many such keys in a row are a burst."""
BURST_PAUSE_S = 0.15
"""A burst ends at a pause this long (shorter than anyone's reaction after a paste)."""
PASTE_JOIN_S = 2.0
"""A paste this soon after a burst or paste, with nothing between, joins it."""


class KeyTiming:
    """Keys in a row that arrived closer together than PROGRAM_KEY_GAP_S."""

    def __init__(self) -> None:
        self.last_at: float | None = None
        self.in_a_row = 0
        self.in_burst = False
        self.streak = 0
        """Which run of close keys this is (a new number after every pause)."""
        self.streak_start: Location = (0, 0)
        """Where the prompt's cursor was when this run began."""

    def note(self, at: float, cursor: Location) -> bool:
        """A key delivered at ``at`` (Textual's event time); True when it is part of a burst."""
        gap = None if self.last_at is None else at - self.last_at
        self.last_at = at
        if gap is not None and gap < (BURST_PAUSE_S if self.in_burst else PROGRAM_KEY_GAP_S):
            self.in_a_row += 1
        else:
            self.in_a_row = 1
            self.streak += 1
            self.streak_start = cursor
        self.in_burst = self.in_a_row >= BURST_KEYS
        return self.in_burst

    def note_paste(self, at: float, cursor: Location) -> None:
        """A paste (bracketed, or a run of keys the driver joined) delivered at ``at``: part
        of the burst or paste just before it when nothing came between them (the driver hands
        a long typed paste over in pieces, as far apart as the app is busy), else a new one."""
        gap = None if self.last_at is None else at - self.last_at
        # (The first key of a typed paste reaches the app alone, just before the rest.)
        joined = gap is not None and (gap < BURST_PAUSE_S or (self.in_burst and gap < PASTE_JOIN_S))
        if not joined:
            self.streak += 1
            self.streak_start = cursor
        self.last_at = at
        self.in_a_row = max(self.in_a_row, BURST_KEYS)
        self.in_burst = True


@dataclass
class TypedBurst:
    """One burst's text in the prompt: inline, or held behind a placeholder once long."""

    start: Location
    end: Location
    streak: int
    chars: int = 0
    """Characters inserted inline so far."""
    marker: str | None = None
    """The placeholder shown instead, once the burst is longer than the inline limit."""
    text: str = ""
    """What the placeholder stands for."""

    def continues(self, timing: KeyTiming, selection: Selection, cursor: Location) -> bool:
        """More text of this burst goes right after it (same run of keys, cursor not moved)."""
        return timing.streak == self.streak and selection.is_empty and cursor == self.end
