"""UI benchmark: the real ``chatapp`` in a pseudo-terminal, side by side with a bare Textual app.

1. process start → first frame, ÷ a bare Textual app (Header, Markdown, Input, Footer) started
   and timed the same way in the same run (alternated, medians; target ≤ 1.2), in a pty and in
   tmux (the tmux client attached to the pty). "First frame" is the footer reaching the terminal.
2. keypress → repaint while a reply streams from the bundled model at full speed: a distinct
   character is typed every 150 ms and timed until the terminal receives it (p50/p95; target
   p95 ≤ 50 ms), plus the same measured idle.
3. tokens shown per second (the status line's token count as the terminal receives it) ÷ tokens
   produced per second by the engine for the same reply (its stored decode rate; target ≥ 0.97).
3b. the chat UI's decode tok/s ÷ `chatapp ask`'s: the same prompt and seed, default settings,
   alternated (target ≥ 0.9); and the UI thread's CPU per token of that reply (from /proc).
4. opening a stored 500-message conversation from the sidebar → its last message painted and a
   keypress echoed (target ≤ 0.5 s), next to a 2-message one.
5. UI cost of streaming a reply that is the 500th message ÷ one that is the 1st (FakeBackend,
   in-process, one forced frame per 3 tokens: Markdown appends + compositor renders; ≤ 1.2).
6. UI CPU per streamed token through the real frame clock (the main thread's CPU while a
   scripted reply streams at 60 and 240 tok/s through the chat screen, the session and the
   store; first and 500th message, and a reply with a 40-line code block; target ≤ 1 ms).

Prints a table and writes benchmarks/results/ui.json. ``--quick`` is a smoke run; ``--only
first_frame,stream_cpu`` runs those sections and keeps the others' last results in ui.json (the
machine's load average is recorded with every section: its figures are only comparable at a
similar load).
"""

from __future__ import annotations

import asyncio
import codecs
import fcntl
import json
import os
import pty
import re
import shlex
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUICK = "--quick" in sys.argv
ONLY = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
RESULTS = ROOT / "benchmarks" / "results" / "ui.json"
FRAME_MARKER = "palette"  # in both apps' footer (the prompt text may be split by the cursor)
BARE_APP = """
from textual.app import App
from textual.widgets import Footer, Header, Input, Markdown

class BareApp(App):
    def compose(self):
        yield Header()
        yield Markdown("# chatapp\\n\\nA bare Textual app.")
        yield Input(placeholder="Ask anything")
        yield Footer()

BareApp().run()
"""
STORY = "Write a very long story about a dragon who learns to paint. Use many paragraphs."
PROBES = [chr(c) for c in [*range(0x2460, 0x2474), *range(0x3251, 0x3260), *range(0x32B1, 0x32C0)]]
DONE = ("reply complete", "token limit", "stopped:")
QUIET_S = 10.0
"""A reply watched without typing streams for at most this long before Esc stops it."""


def progress(text: str) -> None:
    print(f"  … {text}", file=sys.stderr, flush=True)


class PtyApp:
    """A program in a pseudo-terminal; every chunk it writes is kept with its arrival time."""

    def __init__(self, argv: list[str], env: dict[str, str], cols: int = 120, rows: int = 40):
        self.started = time.perf_counter()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child: size the terminal before the program reads it
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execvpe(argv[0], argv, env)
        self.text = ""
        self.stamps: list[tuple[int, float]] = []  # (end offset in text, arrival time)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            now = time.perf_counter()
            with self._lock:
                self.text += self._decoder.decode(data)
                self.stamps.append((len(self.text), now))

    def time_at(self, offset: int) -> float:
        """When the text up to ``offset`` had arrived."""
        with self._lock:
            return next(t for end, t in self.stamps if end >= offset)

    def wait_for(self, needle: str, start: int = 0, timeout: float = 60.0) -> tuple[float, int]:
        """(arrival time, end offset) of the first ``needle`` after ``start``."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self._lock:
                found = self.text.find(needle, max(0, start - len(needle)))
            if found >= 0:
                end = found + len(needle)
                return self.time_at(end), end
            time.sleep(0.002)
        raise TimeoutError(f"{needle!r} not seen in {timeout}s")

    def send(self, data: str) -> tuple[float, int]:
        with self._lock:
            offset = len(self.text)
        now = time.perf_counter()
        os.write(self.fd, data.encode())
        return now, offset

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


def app_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATAPP_")}
    env.update(CHATAPP_HOME=str(home), TERM="xterm-256color", **extra)
    return env


CHATAPP = [sys.executable, "-m", "chatapp"]


# -- 1. first frame ----------------------------------------------------------------------------


def in_tmux(argv: list[str], socket: str) -> list[str]:
    """``argv`` run in a new tmux session of 120×40, the tmux client attached to our pty."""
    return ["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-x", "120", "-y", "40", *argv]


def first_frames(home: Path, rounds: int, *, tmux: bool = False) -> dict[str, float]:
    """Process start → first frame of chatapp ÷ the bare Textual app, alternated (medians). In
    tmux the time runs from starting the tmux client to the frame reaching it (both apps pay
    for the tmux server alike)."""
    home.mkdir(parents=True, exist_ok=True)
    bare = home / "bare_app.py"
    bare.write_text(BARE_APP, encoding="utf-8")
    times: dict[str, list[float]] = {"chatapp": [], "bare": []}
    for round_number in range(rounds + 1):  # the first round only warms the file cache
        for name, argv in (("chatapp", CHATAPP), ("bare", [sys.executable, str(bare)])):
            socket = f"chatapp-bench-{os.getpid()}-{round_number}-{name}"
            if tmux:
                argv = in_tmux([shlex.join(argv)], socket)
            app = PtyApp(argv, app_env(home))
            try:
                arrived, _ = app.wait_for(FRAME_MARKER, timeout=60)
                if round_number:
                    times[name].append(arrived - app.started)
            finally:
                app.close()
                if tmux:
                    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    chat, base = statistics.median(times["chatapp"]), statistics.median(times["bare"])
    ratios = sorted(c / b for c, b in zip(times["chatapp"], times["bare"], strict=True))
    return {
        "chatapp_s": chat,
        "bare_textual_s": base,
        "ratio": chat / base,
        "round_ratios_range": [ratios[0], ratios[-1]],
        "rounds": rounds,
    }


# -- 2 + 3. streaming: keypress latency and display throughput ---------------------------------


def wait_any(app: PtyApp, needles: tuple[str, ...], start: int, timeout: float) -> int:
    """End offset of the first of ``needles`` to appear after ``start``."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        with app._lock:
            found = [(i, n) for n in needles if (i := app.text.find(n, start)) >= 0]
        if found:
            offset, needle = min(found)
            return offset + len(needle)
        time.sleep(0.005)
    raise TimeoutError(f"none of {needles} seen in {timeout}s")


def probe_latency(app: PtyApp, probe: str) -> tuple[float, str]:
    """Seconds from typing ``probe`` to the terminal receiving it, and what arrived meanwhile."""
    sent, offset = app.send(probe)
    arrived, end = app.wait_for(probe, offset, timeout=5)
    with app._lock:
        return arrived - sent, app.text[offset:end]


def shown_rate(app: PtyApp, start: int, end: int) -> tuple[float, int]:
    """Tokens/s from the status line's "N tokens" as the terminal received it."""
    with app._lock:
        span = app.text[start:end]
    seen = [(int(m.group(1)), start + m.end()) for m in re.finditer(r"(\d+) tokens ·", span)]
    counts = [(n, app.time_at(off)) for n, off in seen if n > 0]
    (n0, t0), (n1, t1) = counts[0], counts[-1]
    return ((n1 - n0) / (t1 - t0) if t1 > t0 else 0.0), n1


def stored_decode_rates(home: Path) -> list[float]:
    """The engine's own decode tokens/s for every stored reply, oldest first."""
    from chatapp.storage import ConversationStore

    with ConversationStore(home / "data" / "chatapp.db") as store:
        conversation = store.list_conversations()[0]
        return [
            float((m.stats or {}).get("decode_tokens_per_s") or 0.0)
            for m in store.messages(conversation.id)
            if m.role == "assistant"
        ]


def streaming(home: Path, samples: int, quiet_replies: int) -> dict[str, float]:
    home.mkdir(parents=True, exist_ok=True)
    env = app_env(home, CHATAPP_GENERATION__MAX_TOKENS="600", CHATAPP_GENERATION__SEED="11")
    app = PtyApp(CHATAPP, env)
    idle: list[float] = []
    busy: list[float] = []
    shown: list[tuple[float, int]] = []
    try:
        app.wait_for("ready ·", timeout=300)
        for probe in PROBES[:10]:  # the idle baseline
            idle.append(probe_latency(app, probe)[0])
            time.sleep(0.1)
        app.send("\x15")  # Ctrl+U clears the prompt line
        app.send(STORY)
        _, offset = app.send("\r")
        probes = iter(PROBES[10:] * 8)
        typed_replies = 0
        while len(busy) < samples and typed_replies < 8:
            _, start = app.wait_for("generating…", offset, timeout=180)
            while len(busy) < samples:
                latency, meanwhile = probe_latency(app, next(probes))
                if any(m in meanwhile for m in DONE):
                    break  # the reply ended before this echo: not "while streaming"
                busy.append(latency)
                time.sleep(0.15)
            app.send("\x1b")  # Esc: enough samples from this reply (no-op if it ended)
            end = wait_any(app, DONE, start, timeout=120)
            shown.append(shown_rate(app, start, end))
            typed_replies += 1
            _, offset = app.send("\x12")  # Ctrl+R: another reply (a sibling branch)
            progress(f"keypress samples: {len(busy)}")
        app.send("\x15")
        quiet = []
        for i in range(quiet_replies):
            _, start = app.wait_for("generating…", offset, timeout=180)
            try:  # a long reply streams for at most QUIET_S, then Esc stops it
                end = wait_any(app, DONE, start, timeout=QUIET_S)
            except TimeoutError:
                app.send("\x1b")
                end = wait_any(app, DONE, start, timeout=120)
            quiet.append(shown_rate(app, start, end))
            progress(f"quiet reply {i + 1}: {quiet[-1][1]} tokens")
            if i + 1 < quiet_replies:
                _, offset = app.send("\x12")
    finally:
        app.close()
    engine = stored_decode_rates(home)
    typed_engine, quiet_engine = engine[:typed_replies], engine[typed_replies:]
    quiet_ratios = [r / e for (r, _), e in zip(quiet, quiet_engine, strict=True)]
    typed_ratios = [r / e for (r, _), e in zip(shown, typed_engine, strict=True)]
    busy.sort()
    progress("latencies ms: " + " ".join(f"{1000 * x:.0f}" for x in busy))
    return {
        "keypress_idle_p50_ms": 1000 * statistics.median(idle),
        "keypress_streaming_p50_ms": 1000 * statistics.median(busy),
        "keypress_streaming_p95_ms": 1000 * busy[max(0, round(0.95 * len(busy)) - 1)],
        "keypress_samples": len(busy),
        "engine_tokens_per_s": statistics.median(quiet_engine),
        "shown_tokens_per_s": statistics.median(r for r, _ in quiet),
        "shown_over_produced": statistics.median(quiet_ratios),
        "reply_tokens": [n for _, n in quiet],
        "shown_over_produced_while_typing": statistics.median(typed_ratios),
    }


# -- 3b. the chat UI's reply speed next to `chatapp ask` ----------------------------------------


def main_thread_cpu_s(pid: int) -> float:
    """CPU seconds the process's main thread (the UI's event loop) has used."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def newest_reply_stats(home: Path) -> dict[str, Any]:
    from chatapp.storage import ConversationStore

    with ConversationStore(home / "data" / "chatapp.db") as store:
        conversation = store.list_conversations()[0]
        replies = [m for m in store.messages(conversation.id) if m.role == "assistant"]
        return dict(replies[-1].stats or {})


def ui_reply(env: dict[str, str], home: Path) -> dict[str, float]:
    """One reply to STORY in the real chat UI (a pty): the engine's decode rate as stored, and
    the UI thread's CPU per token while it streamed."""
    app = PtyApp(CHATAPP, env)
    try:
        app.wait_for("ready ·", timeout=300)
        time.sleep(0.3)
        app.send(STORY)
        _, offset = app.send("\r")
        _, start = app.wait_for("generating…", offset, timeout=180)
        cpu = main_thread_cpu_s(app.pid)
        wait_any(app, DONE, start, timeout=300)
        cpu = main_thread_cpu_s(app.pid) - cpu
        time.sleep(0.3)
    finally:
        app.close()
    stats = newest_reply_stats(home)
    tokens = int(stats.get("completion_tokens") or 0)
    return {
        "tok_s": float(stats.get("decode_tokens_per_s") or 0.0),
        "tokens": tokens,
        "prompt_tokens": int(stats.get("prompt_tokens") or 0),
        "ui_ms_per_token": 1000 * cpu / max(1, tokens),
    }


def ask_reply(env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [*CHATAPP, "ask", "--json", STORY], env=env, capture_output=True, text=True, timeout=600
    )
    stats = json.loads(done.stdout)["stats"]
    return {
        "tok_s": float(stats["decode_tokens_per_s"]),
        "tokens": int(stats["completion_tokens"]),
        "prompt_tokens": int(stats["prompt_tokens"]),
    }


def ui_vs_ask(home: Path, rounds: int, max_tokens: int = 300) -> dict[str, Any]:
    """The chat UI's decode tokens/s ÷ `chatapp ask`'s for the same prompt and seed with default
    settings (every core for llama.cpp in both), alternated, ``rounds`` of each."""
    home.mkdir(parents=True, exist_ok=True)
    env = app_env(
        home,
        CHATAPP_GENERATION__MAX_TOKENS=str(max_tokens),
        CHATAPP_GENERATION__SEED="11",
        **{k: v for k, v in os.environ.items() if k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")},
    )
    ui: list[dict[str, float]] = []
    ask: list[dict[str, float]] = []
    for number in range(rounds):
        order = (("ask", ask), ("ui", ui)) if number % 2 == 0 else (("ui", ui), ("ask", ask))
        for name, runs in order:
            runs.append(ask_reply(env) if name == "ask" else ui_reply(env, home))
            progress(f"{name} round {number + 1}: {runs[-1]}")
    ratios = sorted(u["tok_s"] / a["tok_s"] for u, a in zip(ui, ask, strict=True))
    return {
        "ui_tok_s": [round(u["tok_s"], 1) for u in ui],
        "ask_tok_s": [round(a["tok_s"], 1) for a in ask],
        "ratio": statistics.median(ratios),
        "ratio_range": [ratios[0], ratios[-1]],
        "ui_over_ask_median_rates": statistics.median(u["tok_s"] for u in ui)
        / statistics.median(a["tok_s"] for a in ask),
        "ui_ms_per_token_real_model": statistics.median(u["ui_ms_per_token"] for u in ui),
        "tokens": [int(u["tokens"]) for u in ui] + [int(a["tokens"]) for a in ask],
        "prompt_tokens": sorted({int(r["prompt_tokens"]) for r in ui + ask}),
        "rounds": rounds,
        "load_average": os.getloadavg(),
    }


# -- 4. opening a 500-message conversation -----------------------------------------------------


def store_conversations(home: Path) -> None:
    """A 500-message conversation (Markdown, code, Korean) and a 2-message one."""
    os.environ["CHATAPP_HOME"] = str(home)
    from chatapp.storage import open_store

    with open_store() as store:
        for title, exchanges in (("Bench long", 250), ("Bench short", 1)):
            conversation = store.create_conversation(title)
            for i in range(exchanges):
                store.add_message(conversation.id, "user", f"Question {i}: how does step {i} go?")
                last = f"END-OF-{title.split()[1].upper()}" if i == exchanges - 1 else ""
                store.add_message(
                    conversation.id,
                    "assistant",
                    f"Step **{i}** works like this:\n\n```python\nvalue = {i} * 2\n```\n\n"
                    f"- first point\n- second point\n\n서울 {i} {last}",
                    model={"name": "bench"},
                )


def click(app: PtyApp, x: int, y: int) -> tuple[float, int]:
    """A left click at column ``x``, row ``y`` (1-based), as the terminal reports it (SGR)."""
    return app.send(f"\x1b[<0;{x};{y}M\x1b[<0;{x};{y}m")


def open_conversation(app: PtyApp, row: int, marker: str) -> tuple[float, float]:
    """Click a conversation in the sidebar: (seconds until its last message is painted,
    seconds until a key typed right after that is echoed)."""
    sent, offset = click(app, 4, row)
    painted, _ = app.wait_for(marker, offset, timeout=30)
    latency, _ = probe_latency(app, "\u2603")
    app.send("\x7f")  # Backspace: remove the probe again
    time.sleep(0.3)
    return painted - sent, painted - sent + latency


def open_long(home: Path, rounds: int) -> dict[str, float]:
    store_conversations(home)
    # The fake engine: this measures the UI, not a model loading beside it.
    app = PtyApp(CHATAPP, app_env(home, CHATAPP_BACKEND__KIND="fake"))
    long_open, long_ready, short_open = [], [], []
    try:
        app.wait_for("ready ·", timeout=120)
        time.sleep(0.5)
        # The sidebar lists newest first, two rows each, from terminal row 3.
        for _ in range(rounds):
            opened, ready = open_conversation(app, 5, "END-OF-LONG")
            long_open.append(opened)
            long_ready.append(ready)
            short_open.append(open_conversation(app, 3, "END-OF-SHORT")[0])
    finally:
        app.close()
    return {
        "open_500_painted_s": statistics.median(long_open),
        "open_500_interactive_s": statistics.median(long_ready),
        "open_2_painted_s": statistics.median(short_open),
        "rounds": rounds,
    }


# -- 5. cost of appending to the 500th message vs the 1st --------------------------------------


def reply_tokens(count: int) -> list[str]:
    """A reply as tokens: paragraphs with bold and inline code, a code block now and then."""
    tokens = []
    for i in range(count):
        if i % 150 == 100:
            tokens.append("\n\n```python\nvalue = compute(x)\nprint(value)\n```\n\n")
        elif i % 60 == 59:
            tokens.append(f"**word{i}**.\n\n")
        else:
            tokens.append(f"`w{i}` " if i % 17 == 0 else f"word{i} ")
    return tokens


async def append_cost(prior_exchanges: int, chunks: int, chunk_tokens: int) -> tuple[float, float]:
    """UI-thread CPU seconds per token to append streamed text to a reply and repaint, for a
    reply after ``prior_exchanges`` stored exchanges: the same chunks, appended one by one, each
    followed by a screen update (no model, no timers: only the UI's own work is counted). Returns
    (whole reply, its second half — once the reply fills the view)."""
    from chatapp.config import Settings
    from chatapp.engine.fake import FakeBackend
    from chatapp.storage import ConversationStore
    from chatapp.ui.app import ChatApp

    store = ConversationStore(":memory:")
    conversation = store.create_conversation("append")
    for i in range(prior_exchanges):
        store.add_message(conversation.id, "user", f"question {i}: how does step {i} go?")
        store.add_message(
            conversation.id,
            "assistant",
            f"Step **{i}**:\n\n```python\nvalue = {i} * 2\n```\n\n- one\n- two\n\nDone.",
        )
    app = ChatApp(
        Settings(), store, FakeBackend, conversation_id=conversation.id, load_extensions=False
    )
    tokens = reply_tokens(chunks * chunk_tokens)
    costs: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        while not (app.started and app.backend is not None):
            await pilot.pause(0.02)
        await pilot.pause(0.5)
        view = app.chat_screen.chat_view
        widget = await view.add_reply("bench")
        await pilot.pause()
        for i in range(chunks):
            text = "".join(tokens[i * chunk_tokens : (i + 1) * chunk_tokens])
            began = time.thread_time()  # this thread's CPU: other processes do not count
            await widget.append(text)
            await pilot.pause()  # layout + render of the screen
            costs.append(time.thread_time() - began)
    store.close()
    half = len(costs) // 2
    return sum(costs) / len(tokens), sum(costs[half:]) / (len(tokens) - half * chunk_tokens)


def append_costs(rounds: int, chunks: int, chunk_tokens: int = 3) -> dict[str, float]:
    first: list[tuple[float, float]] = []
    last: list[tuple[float, float]] = []
    for _ in range(rounds):  # alternated, so slow moments of the machine hit both alike
        first.append(asyncio.run(append_cost(0, chunks, chunk_tokens)))  # message 2
        last.append(asyncio.run(append_cost(249, chunks, chunk_tokens)))  # message 500
    a, b = (statistics.median(x for x, _ in runs) for runs in (first, last))
    c, d = (statistics.median(y for _, y in runs) for runs in (first, last))
    return {
        "ms_per_token_1st": 1000 * a,
        "ms_per_token_500th": 1000 * b,
        "ratio": b / a,
        "steady_ms_per_token_1st": 1000 * c,
        "steady_ms_per_token_500th": 1000 * d,
        "steady_ratio": d / c,
        "tokens": chunks * chunk_tokens,
        "rounds": rounds,
    }


# -- 6. UI CPU per streamed token, through the real frame clock ----------------------------------

STREAM_RATES = (60.0, 240.0)
"""Tokens/s of the scripted model: the bundled model's `ask` rate on 2 cores, and 4× that."""


def code_reply_tokens(count: int) -> list[str]:
    """Like ``reply_tokens``, with a 40-line code block in the middle (models write long ones)."""
    tokens = reply_tokens(count)
    middle = count // 2
    code = ["\n\n```python\n"] + [f"value_{i} = compute(x, {i})\n" for i in range(40)] + ["```\n\n"]
    return tokens[:middle] + code + tokens[middle + len(code) :]


END_POLL_S = 0.25
"""How often ``stream_cost`` looks for the reply's end. Its wake-ups run on the UI thread and
are counted with it: polling at 50 Hz cost ~12 ms of CPU a second (0.2 ms per token at 60
tok/s), more than the idle app itself (~6 ms a second: cursor blink, timers)."""


async def stream_cost(prior_exchanges: int, tokens: list[str], rate: float) -> tuple[float, float]:
    """Main-thread (UI) CPU seconds per token while a scripted reply streams at ``rate`` through
    the real chat screen: worker thread, session, store, ReplyController's frame clock, Markdown,
    layout and compositor (headless: no terminal output). Returns (CPU s/token, achieved tok/s).
    A short reply with code first warms imports and caches."""
    from chatapp.config import Settings
    from chatapp.engine.fake import FakeBackend
    from chatapp.session import TurnRequest
    from chatapp.storage import ConversationStore
    from chatapp.ui.app import ChatApp

    store = ConversationStore(":memory:")
    conversation = store.create_conversation("stream")
    for i in range(prior_exchanges):
        store.add_message(conversation.id, "user", f"question {i}: how does step {i} go?")
        store.add_message(
            conversation.id,
            "assistant",
            f"Step **{i}**:\n\n```python\nvalue = {i} * 2\n```\n\n- one\n- two\n\nDone.",
        )
    backend = FakeBackend(token_delay_s=1 / rate)
    backend.enqueue(["Warm **up**:\n\n", "```python\n", "x = 1\n", "```\n\n", "- `a`"])
    backend.enqueue(tokens)
    settings = Settings()
    settings.generation.max_tokens = len(tokens) + 8
    app = ChatApp(
        settings, store, lambda: backend, conversation_id=conversation.id, load_extensions=False
    )
    async with app.run_test(size=(120, 40)) as pilot:
        while not (app.started and app.backend is not None):
            await pilot.pause(0.02)
        screen = app.chat_screen
        result = (0.0, 0.0)
        for number in (1, 2):
            await pilot.pause(0.3)
            began_cpu, began = time.thread_time(), time.perf_counter()
            screen.send_request(TurnRequest(text=f"go {number}"))
            while screen.replies_started < number or screen.reply is not None:
                await asyncio.sleep(END_POLL_S)
            cpu, wall = time.thread_time() - began_cpu, time.perf_counter() - began
            result = (cpu / len(tokens), len(tokens) / wall)
    store.close()
    return result


def stream_costs(rounds: int, count: int) -> dict[str, Any]:
    out: dict[str, Any] = {"tokens": count, "rounds": rounds}
    prose, code = reply_tokens(count), code_reply_tokens(count)
    for rate in STREAM_RATES:
        runs: dict[str, list[tuple[float, float]]] = {"1st": [], "500th": [], "code": []}
        for _ in range(rounds):  # alternated, so slow moments of the machine hit all alike
            runs["1st"].append(asyncio.run(stream_cost(0, prose, rate)))
            runs["500th"].append(asyncio.run(stream_cost(249, prose, rate)))
            runs["code"].append(asyncio.run(stream_cost(0, code, rate)))
        key = f"{rate:.0f}_tok_s"
        for name, values in runs.items():
            costs = sorted(1000 * c for c, _ in values)
            out[f"ms_per_token_{name}_{key}"] = statistics.median(costs)
            out[f"ms_per_token_{name}_{key}_range"] = [costs[0], costs[-1]]
            out[f"achieved_tok_s_{name}_{key}"] = statistics.median(r for _, r in values)
        out[f"ui_cpu_share_{key}"] = out[f"ms_per_token_1st_{key}"] * rate / 1000
        progress(f"stream cost at {rate:.0f} tok/s: {out}")
    return out


# -- report ------------------------------------------------------------------------------------


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="chatapp-bench-ui-"))
    sections: dict[str, Any] = {
        "first_frame": lambda: first_frames(work / "frame", 3 if QUICK else 15),
        "first_frame_tmux": lambda: first_frames(
            work / "frame-tmux", 3 if QUICK else 15, tmux=True
        ),
        "streaming": lambda: streaming(work / "stream", 10 if QUICK else 60, 1 if QUICK else 3),
        "ui_vs_ask": lambda: ui_vs_ask(work / "versus", 1 if QUICK else 3),
        "open_500": lambda: open_long(work / "open", 2 if QUICK else 5),
        "stream_cpu": lambda: stream_costs(1 if QUICK else 3, 150 if QUICK else 450),
        "append": lambda: append_costs(1 if QUICK else 7, 60 if QUICK else 250),
    }
    unknown = sorted(set(ONLY or ()) - sections.keys())
    if unknown:
        sys.exit(f"--only: no section {', '.join(unknown)} (sections: {', '.join(sections)})")
    results: dict[str, Any] = {}
    if ONLY is not None and RESULTS.exists():
        results = json.loads(RESULTS.read_text(encoding="utf-8"))
    for name, run in sections.items():
        if ONLY is None or name in ONLY:
            results[name] = {**run(), "load_average": os.getloadavg(), "quick": QUICK}
            progress(f"{name}: {results[name]}")
    missing = [name for name in sections if name not in results]
    if missing:
        sys.exit(f"no results yet for {', '.join(missing)}: run them (without --only)")

    f, t, s, v = (results[k] for k in ("first_frame", "first_frame_tmux", "streaming", "ui_vs_ask"))
    o, c, a = results["open_500"], results["stream_cpu"], results["append"]
    rows = [
        (
            "start → first frame ÷ bare Textual app",
            f"{f['ratio']:.2f}",
            f"{f['chatapp_s']:.3f} s vs {f['bare_textual_s']:.3f} s (pty); load "
            f"{f['load_average'][0]:.1f}",
            "≤ 1.2",
        ),
        (
            "  … in tmux",
            f"{t['ratio']:.2f}",
            f"{t['chatapp_s']:.3f} s vs {t['bare_textual_s']:.3f} s; load {t['load_average'][0]:.1f}",
            "≤ 1.2",
        ),
        (
            "keypress → repaint p95 while streaming",
            f"{s['keypress_streaming_p95_ms']:.1f} ms",
            f"p50 {s['keypress_streaming_p50_ms']:.1f} ms, idle p50 "
            f"{s['keypress_idle_p50_ms']:.1f} ms, n={s['keypress_samples']}; load "
            f"{s['load_average'][0]:.1f}",
            "≤ 50 ms",
        ),
        (
            "tokens shown/s ÷ produced/s",
            f"{s['shown_over_produced']:.3f}",
            f"{s['shown_tokens_per_s']:.1f} vs {s['engine_tokens_per_s']:.1f} tok/s; while typing "
            f"{s['shown_over_produced_while_typing']:.3f}",
            "≥ 0.97",
        ),
        (
            "UI decode tok/s ÷ `chatapp ask` tok/s",
            f"{v['ratio']:.2f}",
            f"UI {v['ui_tok_s']} vs ask {v['ask_tok_s']} tok/s; UI thread "
            f"{v['ui_ms_per_token_real_model']:.1f} ms/token; load {v['load_average'][0]:.1f}",
            "≥ 0.9",
        ),
        (
            "UI CPU per streamed token (frame clock)",
            f"{c['ms_per_token_1st_60_tok_s']:.2f} ms",
            f"at 60 tok/s: 500th message {c['ms_per_token_500th_60_tok_s']:.2f}, with a long code "
            f"block {c['ms_per_token_code_60_tok_s']:.2f}; at 240 tok/s "
            f"{c['ms_per_token_1st_240_tok_s']:.2f} ms; load {c['load_average'][0]:.1f}",
            "≤ 1 ms",
        ),
        (
            "open 500-message chat → interactive",
            f"{o['open_500_interactive_s']:.3f} s",
            f"painted {o['open_500_painted_s']:.3f} s; 2-message chat {o['open_2_painted_s']:.3f} s",
            "≤ 0.5 s",
        ),
        (
            "append cost, 500th message ÷ 1st",
            f"{a['ratio']:.2f}",
            f"{a['ms_per_token_500th']:.2f} vs {a['ms_per_token_1st']:.2f} ms/token of UI CPU "
            f"(a forced frame per 3 tokens); once the reply fills the view {a['steady_ratio']:.2f}",
            "≤ 1.2",
        ),
    ]
    print(f"{'measure':42} {'result':>10}  {'target':8} detail")
    for name, value, detail, target in rows:
        print(f"{name:42} {value:>10}  {target:8} {detail}")
    results.pop("quick", None)  # recorded per section
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
