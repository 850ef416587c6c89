"""Process defaults that ``import chatapp`` sets before numpy loads its BLAS."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "import sys, os; import chatapp; "
    "print('numpy' in sys.modules, os.environ.get('OPENBLAS_THREAD_TIMEOUT')); "
    "import chatapp.embedding.embedder, numpy; "
    "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
)


def _probe(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.split()


def test_openblas_threads_sleep_is_set_before_numpy_loads() -> None:
    # OpenBLAS reads the variable once, when numpy loads it: it must be set by then.
    assert _probe() == ["False", "4", "4"]


def test_a_users_own_openblas_setting_is_kept() -> None:
    assert _probe(OPENBLAS_THREAD_TIMEOUT="20") == ["False", "20", "20"]
