"""The fit hint knows the embedders chatapp documents (multilingual ones included)."""

from __future__ import annotations

from chatapp.models.hardware import EMBEDDERS, MachineMemory, embedder_fit

SMALL = MachineMemory(total_ram=2_000_000_000, available_ram=1_000_000_000)
BIG = MachineMemory(total_ram=32_000_000_000, available_ram=24_000_000_000)


def test_known_embedders_get_a_hint_and_say_whether_they_read_korean() -> None:
    fit = embedder_fit("BAAI/bge-m3", SMALL)
    assert fit is not None and fit[0] == "too big" and fit[1].korean
    assert embedder_fit("BAAI/bge-m3", BIG) == ("fits", EMBEDDERS["BAAI/bge-m3"])
    default = embedder_fit("auto", SMALL)
    assert default is not None and default[0] == "fits" and default[1].korean
    assert not EMBEDDERS["bundled"].korean


def test_unknown_embedder_has_no_hint() -> None:
    assert embedder_fit("someone/unknown-model", BIG) is None
