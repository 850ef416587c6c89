"""Stop strings found across streamed pieces; only text that could still be one is held back."""

from __future__ import annotations

from chatapp.engine.stop_sequences import StopMatcher


def feed_all(matcher: StopMatcher, pieces: list[str]) -> tuple[str, bool]:
    shown = ""
    for piece in pieces:
        out, hit = matcher.feed(piece)
        shown += out
        if hit:
            return shown, True
    return shown + matcher.flush(), False


def test_stop_split_across_pieces() -> None:
    shown, hit = feed_all(StopMatcher(["</answer>"]), ["The answer is 4", "</ans", "wer> more"])
    assert (shown, hit) == ("The answer is 4", True)


def test_partial_match_is_released_when_it_turns_out_not_to_be_a_stop() -> None:
    matcher = StopMatcher(["\nUser:"])
    assert matcher.feed("line one\nUs") == ("line one", False)
    assert matcher.feed("ually fine") == ("\nUsually fine", False)


def test_earliest_of_several_stops_wins() -> None:
    shown, hit = feed_all(StopMatcher(["END", "STOP"]), ["a STOP b END"])
    assert (shown, hit) == ("a ", True)


def test_no_stops_passes_everything_through() -> None:
    matcher = StopMatcher(["", ""])
    assert matcher.feed("안녕") == ("안녕", False)


def test_unfinished_prefix_is_flushed_at_the_end() -> None:
    shown, hit = feed_all(StopMatcher(["<|im_end|>"]), ["done <|im"])
    assert (shown, hit) == ("done <|im", False)
