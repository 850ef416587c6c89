"""Document folders for the retrieval speed benchmarks, built from data the repository ships.

- ``korean_folder(target, megabytes=1)``: real Korean pages — files of
  ``benchmarks/retrieval_eval_ko/corpus`` (the Korean React docs, CC BY 4.0) copied in name order
  until the folder holds ``megabytes`` MB (the last file makes it go just past).
- ``english_folder(target, megabytes=16)``: generated English Markdown, deterministic (seed 0):
  sections of sentences drawn from the words of the shipped CMake docs
  (``benchmarks/retrieval_eval/corpus``), about as many tokens per byte as real technical prose.

Both return (files, bytes).
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KOREAN_CORPUS = ROOT / "benchmarks" / "retrieval_eval_ko" / "corpus"
ENGLISH_CORPUS = ROOT / "benchmarks" / "retrieval_eval" / "corpus"
MB = 1024 * 1024


def korean_folder(target: Path, megabytes: float = 1.0) -> tuple[int, int]:
    target.mkdir(parents=True, exist_ok=True)
    total = files = 0
    for path in sorted(KOREAN_CORPUS.glob("*.md")):
        if total >= megabytes * MB:
            break
        shutil.copyfile(path, target / path.name)
        total += path.stat().st_size
        files += 1
    return files, total


def english_folder(target: Path, megabytes: float = 16.0) -> tuple[int, int]:
    target.mkdir(parents=True, exist_ok=True)
    text = " ".join(p.read_text(encoding="utf-8") for p in sorted(ENGLISH_CORPUS.rglob("*.rst")))
    words = re.findall(r"[A-Za-z_]{3,}", text)
    rng = random.Random(0)
    total = files = 0
    while total < megabytes * MB:
        sections = []
        for s in range(8):
            paras = [
                " ".join(rng.choices(words, k=rng.randint(40, 110))).capitalize() + "."
                for _ in range(rng.randint(3, 6))
            ]
            sections.append(f"## Section {s} {rng.choice(words)}\n\n" + "\n\n".join(paras))
        doc = f"# Generated document {files}\n\n" + "\n\n".join(sections) + "\n"
        (target / f"doc{files:04}.md").write_text(doc, encoding="utf-8")
        total += len(doc.encode())
        files += 1
    return files, total
