"""The thread fit's decisions, fed decode times (no model), and the free-core probe against a
real busy process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatapp.engine.llama_threads import LlamaThreads
from chatapp.engine.thread_fit import (
    REPROBE_EVERY,
    WINDOW,
    CpuProbe,
    ThreadFit,
    ThreadMemory,
    threads_for_free,
)


def feed(fit: ThreadFit, tokens_per_s: float, windows: int = 1) -> list[int]:
    """Decode ``windows`` windows at ``tokens_per_s``; the thread changes the fit asked for."""
    changes = []
    for _ in range(windows * WINDOW):
        threads = fit.observe(1.0 / tokens_per_s)
        if threads is not None:
            changes.append(threads)
    return changes


def test_threads_for_free_cores_give_up_a_core_another_program_half_uses() -> None:
    assert threads_for_free(2.0, 2) == 2
    assert threads_for_free(1.6, 2) == 2  # another program at 0.4 of a core
    assert threads_for_free(1.4, 2) == 1
    assert threads_for_free(1.0, 2) == 1
    assert threads_for_free(0.0, 2) == 1  # never none
    assert threads_for_free(13.2, 16) == 13
    assert threads_for_free(9.0, 4) == 4  # never more than we have


def test_a_collapse_mid_reply_drops_a_thread_for_the_rest_of_it() -> None:
    fit = ThreadFit(2, ThreadMemory(rates={2: 80.0, 1: 60.0}))
    assert fit.start(2.0) == 2
    assert feed(fit, 80.0, windows=3) == []
    assert feed(fit, 25.0) == [1]  # another program took a core: one thread was faster
    assert feed(fit, 60.0, windows=5) == []
    assert fit.history == [2, 1]
    fit.finish()
    assert fit.memory.settled == 1 and fit.memory.settled_free == 2.0


def test_a_collapse_is_seen_even_where_one_thread_fewer_was_slower_before() -> None:
    fit = ThreadFit(4, ThreadMemory(rates={4: 100.0, 3: 30.0}))
    fit.start(4.0)
    assert feed(fit, 95.0, windows=2) == []
    assert feed(fit, 40.0) == [3]  # below 0.6 of the usual 100 tok/s with four threads


def test_a_deep_collapse_drops_without_waiting_for_the_whole_window() -> None:
    fit = ThreadFit(2, ThreadMemory(rates={2: 80.0, 1: 60.0}))
    fit.start(2.0)
    assert [fit.observe(1 / 20) for _ in range(3)] == [None, None, 1]
    assert fit.history == [2, 1]
    fit = ThreadFit(2, ThreadMemory(rates={2: 80.0, 1: 60.0}))
    fit.start(2.0)
    slower = [fit.observe(1 / 40) for _ in range(WINDOW)]  # slower, not collapsed: a window
    assert slower == [None] * (WINDOW - 1) + [1]


def test_one_slow_token_is_not_a_collapse() -> None:
    fit = ThreadFit(2, ThreadMemory(rates={2: 80.0, 1: 60.0}))
    fit.start(2.0)
    durations = [1 / 80] * (WINDOW - 1) + [0.5]  # a garbage collection, a UI frame
    assert [fit.observe(d) for d in durations] == [None] * WINDOW
    assert fit.threads == 2


def test_never_measured_fewer_threads_are_tried_once_and_undone_when_slower() -> None:
    fit = ThreadFit(2)
    assert fit.start(2.0) == 2
    assert feed(fit, 80.0) == [1]  # one thread was never measured on this model: try it
    assert feed(fit, 60.0) == [2]  # slower: back to two, and no more changes in this reply
    assert feed(fit, 20.0, windows=3) == []
    assert fit.finish()
    assert fit.memory.rates == pytest.approx({2: 80.0, 1: 60.0}) and fit.memory.settled == 2
    # The next reply knows both and keeps two threads on a quiet machine.
    assert fit.start(2.0) == 2
    assert feed(fit, 79.0, windows=4) == []


def test_a_drop_that_made_it_worse_is_undone() -> None:
    fit = ThreadFit(2, ThreadMemory(rates={2: 80.0, 1: 60.0}))
    fit.start(2.0)
    assert feed(fit, 40.0) == [1]
    assert feed(fit, 30.0) == [2]  # the machine got busier still: one thread is no better
    assert feed(fit, 10.0, windows=2) == []


def test_the_next_reply_starts_where_the_last_ended_until_the_machine_frees_up() -> None:
    memory = ThreadMemory(rates={2: 80.0, 1: 60.0}, settled=1, settled_free=1.2)
    fit = ThreadFit(2, memory)
    assert fit.start(1.6) == 1  # the probe alone would say 2; the last reply ended at 1
    assert fit.start(None) == 1  # no probe (a reply right after another)
    assert fit.start(1.9) == 1  # not clearly freer than when it settled
    assert fit.start(2.0) == 2  # freed up since: the probe knows best
    memory.replies = REPROBE_EVERY - 1
    assert fit.start(1.7) == 2  # now and then one more is tried again
    assert fit.start(0.5) == 1  # never more than the probe allows
    assert ThreadFit(4, ThreadMemory(settled=9)).start(None) == 4


def test_a_reply_without_a_probe_keeps_the_free_cores_last_seen() -> None:
    fit = ThreadFit(2, ThreadMemory(rates={2: 80.0, 1: 60.0}))
    fit.start(1.0)
    feed(fit, 60.0, windows=2)
    fit.finish()
    assert fit.memory.settled_free == 1.0
    assert fit.start(None) == 1
    feed(fit, 60.0, windows=2)
    fit.finish()
    assert fit.memory.settled_free == 1.0  # so a probe that sees 2 free cores goes back up
    assert fit.start(2.0) == 2


def test_memory_survives_json_and_forgets_what_is_malformed() -> None:
    memory = ThreadMemory(rates={1: 60.0, 2: 80.5}, settled=2, settled_free=1.8, replies=3)
    assert ThreadMemory.from_json(json.loads(json.dumps(memory.to_json()))) == memory
    bad = {"rates": {"x": 1, "2": -5, "3": "fast", "1": 7}, "settled": True, "replies": -1}
    assert ThreadMemory.from_json(bad) == ThreadMemory(rates={1: 7.0})
    assert ThreadMemory.from_json(["not", "a", "dict"]) == ThreadMemory()


class FixedProbe:
    def __init__(self, free: float | None) -> None:
        self.free = free

    def free_cores(self) -> float | None:
        return self.free

    def mark(self) -> None:
        pass


def run_reply(threads: LlamaThreads, seconds_per_token: float, tokens: int) -> None:
    threads.begin_reply()
    evaluate = threads.timed_eval(lambda tokens: time.sleep(seconds_per_token))
    evaluate([1, 2, 3])  # the prompt: not timed
    for _ in range(tokens):
        evaluate([1])
    threads.end_reply()


def test_what_a_process_learned_is_kept_for_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "threads.json"
    first = LlamaThreads(
        "m.gguf:1:2", fixed=None, ceiling=2, probe=FixedProbe(2.0), memory_path=path
    )
    run_reply(first, 0.002, 4 * WINDOW)
    saved = json.loads(path.read_text())["m.gguf:1:2"]
    assert saved["settled"] in (1, 2) and set(saved["rates"]) == {"1", "2"}
    assert path.stat().st_mode & 0o077 == 0
    second = LlamaThreads(
        "m.gguf:1:2", fixed=None, ceiling=2, probe=FixedProbe(None), memory_path=path
    )
    assert second.fit is not None and second.fit.memory.rates.keys() == {1, 2}
    other = LlamaThreads(
        "n.gguf:1:2", fixed=None, ceiling=2, probe=FixedProbe(None), memory_path=path
    )
    assert other.fit is not None and other.fit.memory == ThreadMemory()


def test_a_damaged_memory_file_is_ignored_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "threads.json"
    path.write_bytes(b"\x00{not json")
    threads = LlamaThreads("m:1:2", fixed=None, ceiling=2, probe=FixedProbe(2.0), memory_path=path)
    assert threads.fit is not None and threads.fit.memory == ThreadMemory()
    run_reply(threads, 0.001, 2 * WINDOW)
    assert "m:1:2" in json.loads(path.read_text())


def test_an_unwritable_cache_folder_only_forgets(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the folder should be")
    threads = LlamaThreads(
        "m:1:2", fixed=None, ceiling=2, probe=FixedProbe(2.0), memory_path=not_a_folder / "t.json"
    )
    run_reply(threads, 0.001, 2 * WINDOW)  # nothing raised
    assert threads.fit is not None and threads.fit.memory.rates
    assert not_a_folder.read_text() == "a file where the folder should be"


def test_explicit_threads_are_never_changed(tmp_path: Path) -> None:
    threads = LlamaThreads(
        "m:1:3", fixed=3, ceiling=3, probe=FixedProbe(0.2), memory_path=tmp_path / "t.json"
    )
    assert threads.fit is None and threads.initial == 3
    run_reply(threads, 0.001, 4 * WINDOW)
    assert threads.last_reply == [3] and threads.current == 3
    assert not (tmp_path / "t.json").exists()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_the_probe_sees_a_busy_process_on_one_of_our_cores() -> None:
    cpus = sorted(os.sched_getaffinity(0))[:2]
    probe = CpuProbe(cpus)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(busy.pid, {cpus[0]})
        time.sleep(0.2)
        probe.mark()
        time.sleep(0.3)
        free = probe.free_cores()
    finally:
        busy.kill()
        busy.wait()
    assert free is not None and free <= len(cpus) - 0.5
    assert probe.free_cores() is None  # asked again at once: too short an interval to tell


def test_a_container_cpu_quota_bounds_the_cores(tmp_path: Path) -> None:
    from chatapp.engine.thread_fit import cgroup_cpu_limit

    proc, root = tmp_path / "cgroup", tmp_path / "fs"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "cpu.max").write_text("300000 100000\n")
    (root / "a" / "b" / "cpu.max").write_text("max 100000\n")
    proc.write_text("0::/a/b\n")
    assert cgroup_cpu_limit(proc, root) == 3.0  # the parent's quota holds for the child
    v1 = root / "cpu,cpuacct" / "docker" / "x"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("150000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("4:cpu,cpuacct:/docker/x\n1:name=systemd:/\n")
    assert cgroup_cpu_limit(proc, root) == 1.5
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(proc, root) is None  # no quota
    (root / "a" / "cpu.max").write_text("lots\n")
    proc.write_text("garbage\n0::/a/b\n")
    assert cgroup_cpu_limit(proc, root) is None  # unreadable: not trusted
    assert cgroup_cpu_limit(tmp_path / "missing", root) is None
