"""Arithmetic-only evaluator for the ``${eval:...}`` YAML resolver.

The official loader hands ``${eval:...}`` strings to Python's ``eval``, so a config file could run any code.
Release configs only ever need arithmetic on numbers, so this walks the parsed expression tree and refuses
every node that is not a number, a parenthesised group, a unary sign or one of ``+ - * / // % **``.
"""

from __future__ import annotations

import ast
import math
import operator

_BINARY_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY_OPS = {ast.USub: operator.neg, ast.UAdd: operator.pos}

# ``9**9**9`` is short but would take minutes and gigabytes: cap the size of any power's result.
_MAX_POW_BITS = 4096
_MAX_EXPR_CHARS = 1000


def safe_arithmetic_eval(expression: str | int | float) -> int | float:
    """Evaluate a numeric expression such as ``"25 * 10"`` or ``"-(3 + 4) ** 2 / 7"``.

    Raises:
        ValueError: naming the expression, when it holds anything other than numeric literals, parentheses,
            unary ``-``/``+`` and the binary operators ``+ - * / // % **``, or when it cannot be computed.
    """
    if isinstance(expression, bool):
        raise ValueError(f"eval expression {expression!r}: booleans are not numbers here")
    if isinstance(expression, int | float):
        return expression
    if not isinstance(expression, str):
        raise ValueError(f"eval expression {expression!r}: expected a string, got {type(expression).__name__}")
    if len(expression) > _MAX_EXPR_CHARS:
        raise ValueError(f"eval expression {expression[:60]!r}...: longer than {_MAX_EXPR_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"eval expression {expression!r} is not valid arithmetic: {e.msg}") from None
    try:
        return _eval_node(tree.body, expression)
    except (ZeroDivisionError, OverflowError) as e:
        raise ValueError(f"eval expression {expression!r} cannot be computed: {e}") from None


def _eval_node(node: ast.AST, expression: str) -> int | float:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(
                f"eval expression {expression!r}: literal {value!r} is not allowed (only int and float numbers)"
            )
        return value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPS:
        return _UNARY_OPS[type(node.op)](_eval_node(node.operand, expression))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
        left = _eval_node(node.left, expression)
        right = _eval_node(node.right, expression)
        if isinstance(node.op, ast.Pow):
            _check_power_size(left, right, expression)
        return _BINARY_OPS[type(node.op)](left, right)
    raise ValueError(
        f"eval expression {expression!r}: {type(node).__name__} ({ast.unparse(node)!r}) is not allowed; "
        "only numbers, parentheses, unary -/+ and + - * / // % ** may appear"
    )


def _check_power_size(base: int | float, exponent: int | float, expression: str) -> None:
    if abs(base) <= 1 or exponent <= 0:
        return
    if math.log2(abs(base)) * exponent > _MAX_POW_BITS:
        raise ValueError(f"eval expression {expression!r}: {base} ** {exponent} is too large to compute")
