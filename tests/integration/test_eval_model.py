"""``chatapp eval`` with the bundled SmolLM2 and MiniLM: a small Korean sentiment set with a bad
line in it, similar 2-shot (MiniLM picks the examples) with and without the constraint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatapp.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

NSMC = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "nsmc_dev.jsonl"


def test_eval_small_set_with_a_bad_line(capsys, tmp_path: Path) -> None:
    lines = NSMC.read_text(encoding="utf-8").splitlines()[:12]
    lines.insert(4, '{"text": "broken line", "label": ')
    data = tmp_path / "small.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out_path = tmp_path / "results.json"
    argv = ["eval", "sentiment", "--data", str(data), "--limit", "8", "--shots", "2"]
    argv += ["--select", "similar", "--constraint", "both", "--output", str(out_path)]
    try:
        main(argv)
    except SystemExit as exc:
        assert not exc.code
    out, err = capsys.readouterr()
    assert f"{data} line 5: not valid JSON" in err
    assert "sentiment · 2-shot similar · constrained" in out and "invalid" in out
    document = json.loads(out_path.read_text(encoding="utf-8"))
    runs = {r["config"]["label"]: r for r in document["runs"]}
    assert set(runs) == {
        "sentiment · 2-shot similar · constrained",
        "sentiment · 2-shot similar · unconstrained",
    }
    for label, run in runs.items():
        metrics = run["metrics"]
        assert metrics["n"] == 8 and len(run["items"]) == 8
        assert 0 <= metrics["accuracy"] <= 1 and metrics["seconds_per_item"] > 0
        if label.endswith(" constrained"):
            assert metrics["invalid_rate"] == 0
            assert all(i["parsed"] in ("positive", "negative") for i in run["items"])
        assert sum(sum(row.values()) for row in metrics["confusion"].values()) == 8
    assert [b["line"] for b in document["data"]["bad_lines"]] == [5]
    assert document["model"]["name"] == "smollm2-135m"
