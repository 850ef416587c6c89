"""Exact arithmetic for ``math.calculate``: an expression parsed by Python's ``ast`` and
evaluated over a small whitelist (no ``eval``, no names but the listed functions and
constants). Integers and decimals are exact (``fractions.Fraction``) until a function such as
``sqrt`` or a fractional power needs floating point; sizes are bounded so ``9**9**9`` is
refused instead of filling memory."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from fractions import Fraction

MAX_EXPRESSION = 500
MAX_DIGITS = 4000
MAX_EXPONENT = 10_000

Number = Fraction | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


class CalculationError(ValueError):
    """An expression that is not arithmetic, or whose result is out of bounds."""


def calculate(expression: str) -> str:
    """The value of ``expression`` as text: an integer, an exact fraction with its decimal
    value, or a float."""
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    if not text:
        raise CalculationError("the expression is empty")
    if len(text) > MAX_EXPRESSION:
        raise CalculationError(f"the expression is longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculationError(f"not an arithmetic expression ({exc.msg})") from None
    return _show(_value(tree.body))


def _value(node: ast.AST) -> Number:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise CalculationError("booleans are not numbers here")
        return Fraction(str(node.value)) if isinstance(node.value, float) else Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _value(node.operand)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        op = _BINARY.get(type(node.op))
        if op is None:
            raise CalculationError(f"the operator {type(node.op).__name__} is not supported")
        try:
            return _bounded(op(left, right))
        except ZeroDivisionError:
            raise CalculationError("division by zero") from None
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and len(node.args) == 1
    ):
        try:
            return _bounded(float(_FUNCTIONS[node.func.id](float(_value(node.args[0])))))
        except (ValueError, OverflowError) as exc:
            raise CalculationError(f"{node.func.id}: {exc}") from None
    raise CalculationError(f"{ast.unparse(node)[:60]!r} is not arithmetic this tool evaluates")


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(exponent, Fraction) and exponent.denominator == 1:
        if abs(exponent) > MAX_EXPONENT:
            raise CalculationError(f"exponents above {MAX_EXPONENT:,} are not evaluated")
        if isinstance(base, Fraction) and base != 0:
            size = max(abs(base.numerator), abs(base.denominator)).bit_length()
            if size * abs(exponent) > MAX_DIGITS * 3.33:
                raise CalculationError(f"the result would have more than {MAX_DIGITS:,} digits")
        try:
            return _bounded(base**exponent)
        except ZeroDivisionError:
            raise CalculationError("zero to a negative power") from None
    try:
        value = float(base) ** float(exponent)
    except (OverflowError, ZeroDivisionError) as exc:
        raise CalculationError(str(exc)) from None
    if isinstance(value, complex):
        raise CalculationError("the result is not a real number")
    return _bounded(value)


def _bounded(value: Number) -> Number:
    if isinstance(value, Fraction):
        if max(abs(value.numerator), value.denominator).bit_length() > MAX_DIGITS * 3.33:
            raise CalculationError(f"the result has more than {MAX_DIGITS:,} digits")
        return value
    if math.isnan(value) or math.isinf(value):
        raise CalculationError("the result is not a finite number")
    return value


def _show(value: Number) -> str:
    if isinstance(value, float):
        return repr(value)
    if value.denominator == 1:
        return str(value.numerator)
    decimal = value.numerator / value.denominator
    return f"{value.numerator}/{value.denominator} (≈ {decimal!r})"
