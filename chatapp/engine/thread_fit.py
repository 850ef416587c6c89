"""How many CPU threads llama.cpp decodes with: the cores free when a reply starts, corrected by
what the reply's own decode speed shows.

llama.cpp's worker threads spin-wait for each other at every step of a token, so when another
program takes a core one of them runs only part of the time and every token waits for it:
decoding with every core then collapses to a fraction of one thread's speed. ``free_cores``
reads how much CPU other programs used on the cores we may run on (the machine's busy time
minus this process's own), and ``ThreadFit`` starts a reply with that many threads, watches the
decode time of each token in windows, drops a thread for the rest of the reply when the speed
collapses (or when one thread fewer was faster before), and goes back when the drop made it
worse. ``ThreadMemory`` is what it learned, kept for the next reply (and the next process).

The decision is pure (it takes numbers, so tests feed it times); ``CpuProbe`` and
``cgroup_cpu_limit`` (a container's CPU quota, which bounds the cores) read the kernel's files.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

WINDOW = 8
"""Token decodes per measurement: the median of a window ignores a single slow token."""
COLLAPSE = 0.6
"""A window slower than this share of the count's usual speed means a core was taken."""
CLEARLY_FASTER = 1.1
"""One thread fewer is taken when it was this much faster than the window just measured."""
WORSE_AFTER_CHANGE = 0.95
"""A change is undone when the next window is below this share of the one before it."""
EARLY = 3
EARLY_FASTER = 2.0
"""After ``EARLY`` tokens, a drop comes at once when one thread fewer was this much faster."""
MAX_CHANGES = 4
"""Thread changes in one reply (the free-core probe does most of the fitting)."""
REPROBE_EVERY = 16
"""Every this many replies one more thread than last settled is tried again."""
OTHERS_ROUNDING = 0.5
"""Other programs using this many cores or more take a whole core from us."""
MIN_PROBE_S = 0.08
"""A shorter interval says too little (the kernel counts CPU time in 10 ms ticks)."""
CGROUP_ROOT = Path("/sys/fs/cgroup")


def threads_for_free(free: float, ceiling: int) -> int:
    """Threads for ``free`` idle cores out of ``ceiling``: another program's core is given up
    once it uses half of one or more."""
    others = max(0.0, ceiling - free)
    return max(1, min(ceiling, ceiling - math.floor(others + OTHERS_ROUNDING)))


@dataclass
class ThreadMemory:
    """What earlier replies on this model and machine showed."""

    rates: dict[int, float] = field(default_factory=dict)
    """Typical decode tokens/s seen with each thread count."""
    settled: int | None = None
    """The thread count the last measured reply ended with."""
    settled_free: float | None = None
    """Free cores the probe saw when that reply started (None: no probe then)."""
    replies: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "rates": {str(n): round(r, 2) for n, r in sorted(self.rates.items())},
            "settled": self.settled,
            "settled_free": None if self.settled_free is None else round(self.settled_free, 2),
            "replies": self.replies,
        }

    @classmethod
    def from_json(cls, data: object) -> ThreadMemory:
        """Read back ``to_json``'s output; anything malformed is forgotten, not trusted."""
        memory = cls()
        if not isinstance(data, dict):
            return memory
        rates = data.get("rates")
        if isinstance(rates, dict):
            for key, value in rates.items():
                if str(key).isdigit() and isinstance(value, int | float) and value > 0:
                    memory.rates[int(key)] = float(value)
        settled = data.get("settled")
        if isinstance(settled, int) and not isinstance(settled, bool) and settled >= 1:
            memory.settled = settled
        free = data.get("settled_free")
        if isinstance(free, int | float) and not isinstance(free, bool) and free >= 0:
            memory.settled_free = float(free)
        replies = data.get("replies")
        if isinstance(replies, int) and not isinstance(replies, bool) and replies >= 0:
            memory.replies = replies
        return memory


class ThreadFit:
    """Picks the thread count of each reply and changes it while the reply decodes.

    ``start(free)`` at the beginning of a reply, ``observe(seconds)`` after each one-token
    decode (it returns the new count when the threads should change before the next one),
    ``finish()`` at the end (it returns whether the reply measured anything worth saving).
    """

    def __init__(
        self, ceiling: int, memory: ThreadMemory | None = None, *, window: int = WINDOW
    ) -> None:
        self.ceiling = max(1, ceiling)
        self.memory = memory or ThreadMemory()
        self.window = window
        self.threads = self.ceiling
        self.history: list[int] = [self.ceiling]
        """The counts the current (or last) reply went through, in order."""
        self._reset(None)

    def _reset(self, free: float | None) -> None:
        self._free = free
        self._durations: list[float] = []
        self._seen: dict[int, list[float]] = {}
        self._changes = 0
        self._explored = False
        self._frozen = False
        self._before_change: tuple[int, float] | None = None

    def start(self, free: float | None) -> int:
        """The thread count for a reply, given the idle cores the probe saw (None: no probe,
        as for a reply right after another)."""
        memory = self.memory
        # A reply without a probe of its own keeps the free cores the last probe saw.
        self._reset(free if free is not None else memory.settled_free)
        memory.replies += 1
        settled = memory.settled if memory.settled is not None else self.ceiling
        settled = min(settled, self.ceiling)
        if free is None:
            threads = settled
        else:
            threads = threads_for_free(free, self.ceiling)
            if settled < threads:
                freed = memory.settled_free is not None and free >= memory.settled_free + 0.75
                if freed:
                    pass  # the machine freed up since the drop: the probe knows best
                elif memory.replies % REPROBE_EVERY == 0:
                    threads = settled + 1
                else:
                    threads = settled
        self.threads = threads
        self.history = [threads]
        return threads

    def observe(self, seconds: float) -> int | None:
        """One token took ``seconds`` to decode; the new thread count, or None to keep it."""
        if self._frozen or seconds <= 0:
            return None
        durations = self._durations
        durations.append(seconds)
        if len(durations) < self.window:
            if len(durations) < EARLY or not self._may_drop():
                return None
            # A collapse costs most where tokens are slowest: don't wait for the whole window
            # when one thread fewer was far faster.
            lower = self._rate(self.threads - 1)
            rate = 1.0 / statistics.median(durations)
            if lower is None or lower <= rate * EARLY_FASTER:
                return None
        else:
            rate = 1.0 / statistics.median(durations)
        durations.clear()
        n = self.threads
        self._seen.setdefault(n, []).append(rate)
        if self._before_change is not None:
            came_from, before = self._before_change
            self._before_change = None
            if rate < before * WORSE_AFTER_CHANGE:
                self._frozen = True  # the change made it worse: back, and no more this reply
                return self._set(came_from)
            return None
        if not self._may_drop():
            return None
        lower = self._rate(n - 1)
        usual = self.memory.rates.get(n)
        if lower is not None and lower > rate * CLEARLY_FASTER:
            pass  # one fewer was faster
        elif usual is not None and rate < usual * COLLAPSE:
            pass  # collapsed: something took a core
        elif lower is None and not self._explored:
            self._explored = True  # never measured one fewer here: try it once
        else:
            return None
        self._before_change = (n, rate)
        return self._set(n - 1)

    def _may_drop(self) -> bool:
        return self.threads > 1 and self._changes < MAX_CHANGES and self._before_change is None

    def _rate(self, n: int) -> float | None:
        seen = self._seen.get(n)
        if seen:
            return statistics.median(seen)
        return self.memory.rates.get(n)

    def _set(self, threads: int) -> int:
        self._changes += 1
        self.threads = threads
        self.history.append(threads)
        return threads

    def finish(self) -> bool:
        """Fold this reply's speeds into the memory; True when the reply measured anything
        (then the memory, with its count of replies, is worth saving)."""
        memory = self.memory
        for n, rates in self._seen.items():
            new = statistics.median(rates)
            old = memory.rates.get(n)
            memory.rates[n] = new if old is None else (old + new) / 2
        if not self._seen:
            return False
        memory.settled = self.threads
        memory.settled_free = self._free
        return True


# -- the probe ---------------------------------------------------------------------------------


class FreeCoreProbe(Protocol):
    """What the backend asks at the start and end of each reply (``CpuProbe``; tests give a
    probe of their own to start a reply with a chosen count)."""

    def free_cores(self) -> float | None: ...

    def mark(self) -> None: ...


@dataclass(frozen=True)
class CpuSample:
    wall: float
    busy: float | None
    """CPU seconds the machine's cores we may use have been busy (None: unknown here)."""
    ours: float
    """CPU seconds of this process."""


def usable_cpus() -> list[int]:
    """CPU numbers this process may run on (taskset, container cpusets)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def cgroup_cpu_limit(
    proc: Path = Path("/proc/self/cgroup"), root: Path = CGROUP_ROOT
) -> float | None:
    """CPUs a cgroup quota lets this process use (``docker --cpus=2`` gives 2.0; the smallest
    along the path for cgroup v2), or None when there is none or it cannot be read."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    limits: list[float] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2: cpu.max is "max 100000" or "200000 100000"
            where = root / path.strip("/")
            while True:
                limits += _quota(where / "cpu.max", None)
                if where == root or root not in where.parents:
                    break
                where = where.parent
        elif "cpu" in controllers.split(","):  # cgroup v1
            for base in (root / controllers, root / "cpu"):
                for where in (base / path.strip("/"), base):
                    limits += _quota(where / "cpu.cfs_quota_us", where / "cpu.cfs_period_us")
    return min(limits) if limits else None


def _quota(quota_file: Path, period_file: Path | None) -> list[float]:
    try:
        if period_file is None:
            quota, period = quota_file.read_text().split()
        else:
            quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
        if quota in ("max", "-1") or int(period) <= 0 or int(quota) <= 0:
            return []
        return [int(quota) / int(period)]
    except (OSError, ValueError):
        return []


_TICK = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0


def _busy_from_proc_stat(cpus: set[int]) -> float | None:
    """Busy seconds of ``cpus`` from /proc/stat (Linux); None where it cannot be read."""
    try:
        with open("/proc/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    busy = 0
    for line in text.split(b"\n"):
        if not line.startswith(b"cpu") or line.startswith(b"cpu "):
            continue
        name, *values = line.split()
        try:
            if int(name[3:]) not in cpus:
                continue
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, values[:8])
        except ValueError:
            continue
        busy += user + nice + system + irq + softirq + steal  # stolen time is not ours either
    return busy / _TICK


def _busy_from_psutil(cpus: set[int]) -> float | None:
    try:
        import psutil

        times = psutil.cpu_times(percpu=True)
    except Exception:
        return None
    return sum(
        t.user + t.system + getattr(t, "nice", 0.0) for i, t in enumerate(times) if i in cpus
    )


class CpuProbe:
    """Measures how many of our cores other programs left idle since the last sample."""

    def __init__(self, cpus: list[int] | None = None) -> None:
        self.cpus = set(cpus if cpus is not None else usable_cpus())
        self._read: Callable[[set[int]], float | None] = (
            _busy_from_proc_stat if os.path.exists("/proc/stat") else _busy_from_psutil
        )
        self.last = self.sample()

    def sample(self) -> CpuSample:
        return CpuSample(time.monotonic(), self._read(self.cpus), time.process_time())

    def free_cores(self) -> float | None:
        """Idle cores (of ours) since the last call, counting this process's own CPU time as
        idle; None when the interval is too short to tell or the counters cannot be read."""
        now = self.sample()
        before, wall = self.last, now.wall - self.last.wall
        if wall < MIN_PROBE_S:
            return None  # too short to tell: keep the last sample as the start
        self.last = now
        if now.busy is None or before.busy is None:
            return None
        others = (now.busy - before.busy - (now.ours - before.ours)) / wall
        return max(0.0, len(self.cpus) - max(0.0, others))

    def mark(self) -> None:
        """Start the next interval now (a reply ended: its own threads are not others')."""
        self.last = self.sample()
