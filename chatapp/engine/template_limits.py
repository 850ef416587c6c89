"""Limits on rendering a chat template that came with a model file.

A GGUF's ``tokenizer.chat_template`` is Jinja2 code from whoever made the file. Jinja's sandbox
keeps it away from Python's internals but not from the machine's time and memory: two nested
``range(100000)`` loops run for hours, ``'A' * 3000000000`` asks for gigabytes. Here every
render runs with

- a time limit (``TIME_LIMIT_S``), checked on every line the template's compiled code runs (so
  an empty loop is stopped too) and on every Python call it leads to;
- a size limit on every string and list it builds (``*``, ``+``, ``~``, ``%``, ``join``,
  ``replace``, padding and width arguments) and on its output, checked *before* the memory is
  taken: a few megabytes beyond what the messages themselves hold;
- small integers only where an argument sizes something (``range``, ``center``, ``indent``…).

Going over a limit raises ``TemplateLimitError``; chat_formats then uses the model family's
built-in format and says so. A template that went over once is not run again in this process.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from functools import wraps
from types import FrameType
from typing import Any

import jinja2
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import Concat
from jinja2.sandbox import ImmutableSandboxedEnvironment

TIME_LIMIT_S = 2.0
BASE_CHARS = 4_000_000
"""Text a render may build beyond four times what its messages hold."""
MAX_SIZE_ARGUMENT = 100_000
"""The largest width, count or range a template may ask for."""
MAX_INT_BITS = 4096

_TEMPLATE_FILE = "<template>"
_PERCENT_SPEC = re.compile(r"%[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")
_DIGITS = re.compile(r"\d+")
_state = threading.local()
over_limit: set[str] = set()
"""Template sources that went over a limit in this process (not run again)."""


class TemplateLimitError(jinja2.TemplateError):
    """A chat template that needs more time or memory than a chat template may take."""


def _max_chars() -> int:
    return int(getattr(_state, "max_chars", None) or BASE_CHARS)


def _check_size(size: int, what: str) -> None:
    if size > _max_chars():
        raise TemplateLimitError(
            f"the template builds {what} {size:,} long (limit {_max_chars():,})"
        )


def _size_of(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


def _check_argument(value: Any, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SIZE_ARGUMENT:
        raise TemplateLimitError(
            f"the template asks for {what} of {value:,} (limit {MAX_SIZE_ARGUMENT:,})"
        )


def _check_width(digits: str) -> None:
    if len(digits) > 6 or int(digits) > MAX_SIZE_ARGUMENT:
        raise TemplateLimitError(f"the template formats with a width of {digits[:20]}")


def _check_percent_format(spec: str, args: Iterable[Any]) -> None:
    """Widths and precisions in a ``%`` format string, and ``*`` widths given as arguments."""
    starred = False
    for match in _PERCENT_SPEC.finditer(spec):
        for part in match.groups():
            if part == "*":
                starred = True
            elif part:
                _check_width(part)
    if starred:
        for arg in args:
            _check_argument(arg, "a width")


def _check_brace_format(spec: str) -> None:
    """Widths and precisions in a ``str.format`` string (``{:>1000000}``)."""
    for match in _BRACE_SPEC.finditer(spec):
        for digits in _DIGITS.findall(match.group(1)):
            _check_width(digits)


def _join_size(separator: str, items: list[Any]) -> int:
    return sum(len(str(i)) for i in items) + len(separator) * max(0, len(items) - 1)


def _replace_size(text: str, old: str, new: str, count: Any = -1) -> int:
    found = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(0, len(new) - len(old))


def _binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``left OPERATOR right`` when its result would be too big (before computing it)."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                _check_size(_size_of(seq) * max(0, times), "a repeated sequence")
        both_ints = isinstance(left, int) and isinstance(right, int)
        if both_ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimitError("the template multiplies numbers that are too large")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            if max(1, left.bit_length()) * right > MAX_INT_BITS:
                raise TemplateLimitError("the template raises a number to too large a power")
        elif isinstance(right, (int, float)) and abs(right) > MAX_SIZE_ARGUMENT:
            raise TemplateLimitError("the template raises a number to too large a power")
    elif operator == "+":
        _check_size(_size_of(left) + _size_of(right), "a joined sequence")
    elif operator == "%" and isinstance(left, str):
        args = right if isinstance(right, tuple) else (right,)
        _check_percent_format(left, args)
        _check_size(len(left) + sum(len(str(a)) for a in args), "a formatted string")


def checked_join(pieces: Iterable[Any]) -> str:
    """``"".join`` of a template's output or of a ``{% set %}`` block, within the size limit."""
    items = [str(p) for p in pieces]
    _check_size(_join_size("", items), "text")
    return "".join(items)


def _checked_concat(values: Iterable[Any]) -> str:
    """The ``~`` operator within the size limit."""
    return checked_join(values)


_STR_PADDING = {"center", "ljust", "rjust", "zfill"}


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Size checks for the calls a template can make that build big things."""
    target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
    owner = getattr(target, "__self__", None)
    name = getattr(target, "__name__", "")
    if isinstance(owner, str):
        if name in _STR_PADDING and args:
            _check_argument(args[0], f"str.{name}() width")
        elif name == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            _check_argument(size, "a tab size")
            _check_size(len(owner) * max(1, int(size)), "expanded text")
        elif name == "replace" and len(args) >= 2:
            _check_size(_replace_size(owner, str(args[0]), str(args[1]), *args[2:3]), "text")
        elif name == "join" and args:
            _check_size(_join_size(owner, list(args[0])), "joined text")
    if name in ("format", "format_map") and isinstance(owner, str):
        _check_brace_format(owner)


def _checked_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A Jinja filter whose size arguments are checked first."""
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    @wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        subject, rest = (args[skip], list(args[skip + 1 :])) if len(args) > skip else (None, [])
        if name == "format":
            if isinstance(subject, str):
                _check_percent_format(subject, rest)
            return function(*args, **kwargs)
        for value in (*rest, *kwargs.values()):
            _check_argument(value, f"the {name} filter")
        if name == "indent" and isinstance(subject, str):
            width = rest[0] if rest else kwargs.get("width", 4)
            width = len(width) if isinstance(width, str) else int(width)
            _check_size(len(subject) + (subject.count("\n") + 1) * width, "indented text")
        elif name == "replace" and isinstance(subject, str) and len(rest) >= 2:
            _check_size(_replace_size(subject, str(rest[0]), str(rest[1])), "text")
        elif name == "join" and subject is not None and not isinstance(subject, str):
            items = list(subject)
            separator = str(rest[0]) if rest else str(kwargs.get("d", ""))
            _check_size(_join_size(separator, items), "joined text")
            args = (*args[:skip], items, *args[skip + 1 :])
        return function(*args, **kwargs)

    return run


_SIZED_FILTERS = ("center", "indent", "wordwrap", "truncate", "batch", "slice", "replace",
                  "join", "format")  # fmt: skip


class _CheckedConcatGenerator(CodeGenerator):
    """Compiles ``a ~ b`` to a size-checked join instead of Jinja's plain ``str_join``."""

    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        self.write("environment.checked_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the size checks above."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _CheckedConcatGenerator

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.concat = checked_join  # type: ignore[assignment]
        self.checked_concat = _checked_concat
        for name in _SIZED_FILTERS:
            if name in self.filters:
                self.filters[name] = _checked_filter(name, self.filters[name])

        def limited_range(*args: int) -> range:
            for value in args:
                _check_argument(value, "a range")
            return range(*args)

        self.globals["range"] = limited_range
        self.globals.pop("lipsum", None)  # lorem ipsum of any length; no chat template uses it

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_call(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


def _line_watch(deadline: float) -> Callable[..., Any]:
    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise TemplateLimitError(f"the template ran longer than {TIME_LIMIT_S:g} s")
        return local

    def watch(frame: FrameType, event: str, arg: Any) -> Any:
        # Every call is timed (a filter's own loop calls functions too); only the template's
        # compiled code is followed line by line, which stops a loop with an empty body.
        if time.monotonic() > deadline:
            raise TemplateLimitError(f"the template ran longer than {TIME_LIMIT_S:g} s")
        return local if frame.f_code.co_filename == _TEMPLATE_FILE else None

    return watch


def render_limited(template: jinja2.Template, source: str, input_chars: int, **context: Any) -> str:
    """``template.render(**context)`` within the time and size limits; TemplateLimitError (and
    ``source`` remembered in ``over_limit``) when it goes over."""
    if source in over_limit:
        raise TemplateLimitError("the template went over the render limits before")
    previous_trace = sys.gettrace()
    previous_chars = getattr(_state, "max_chars", None)  # None outside any render
    _state.max_chars = BASE_CHARS + 4 * input_chars
    sys.settrace(_line_watch(time.monotonic() + TIME_LIMIT_S))
    try:
        return template.render(**context)
    except TemplateLimitError:
        over_limit.add(source)
        raise
    except MemoryError:
        over_limit.add(source)
        raise TemplateLimitError("the template ran out of memory") from None
    finally:
        sys.settrace(previous_trace)
        _state.max_chars = previous_chars
