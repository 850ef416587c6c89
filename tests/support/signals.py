"""Give child processes the Ctrl+C a terminal would deliver.

A non-interactive shell starts background jobs with SIGINT ignored, and children inherit that;
a CI runner or a backgrounded `make test` would then make every "Ctrl+C" test a no-op. Pass
``preexec_fn=default_sigint`` to Popen so the child gets Python's normal KeyboardInterrupt.
"""

from __future__ import annotations

import signal


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
