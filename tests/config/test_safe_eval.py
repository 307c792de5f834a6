"""The ``${eval:...}`` replacement: arithmetic works, everything else is refused with the expression named."""

from __future__ import annotations

import pytest

from songbloom.config.safe_eval import safe_arithmetic_eval


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("25 * 10", 250),
        ("25.0*10", 250.0),
        ("-(3 + 4) ** 2 / 7", -7.0),
        ("7 // 2 + 7 % 2", 4),
        ("2 ** -1", 0.5),
        ("+3 - -3", 6),
        ("1e-3 * 1000", 1.0),
        (" 48000 / 1920 ", 25.0),
        (5, 5),
        (0.25, 0.25),
    ],
)
def test_arithmetic(expr, expected):
    result = safe_arithmetic_eval(expr)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os').system('echo pwned')",
        "open('/etc/passwd').read()",
        "x + 1",
        "(1).__class__",
        "lambda: 1",
        "[1, 2]",
        "'a' * 3",
        "True + 1",
        "1 if 2 else 3",
        "1 < 2",
        "1 & 3",
        "~1",
        "not 1",
    ],
)
def test_refuses_anything_but_arithmetic(expr):
    with pytest.raises(ValueError, match="not allowed") as info:
        safe_arithmetic_eval(expr)
    assert repr(expr) in str(info.value)


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [("1 / 0", "cannot be computed"), ("9 ** 9 ** 9", "too large"), ("2 +", "not valid arithmetic")],
)
def test_errors_name_the_expression(expr, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        safe_arithmetic_eval(expr)
    assert repr(expr) in str(info.value)


def test_rejects_non_numbers():
    with pytest.raises(ValueError, match="boolean"):
        safe_arithmetic_eval(True)
    with pytest.raises(ValueError, match="expected a string"):
        safe_arithmetic_eval([1])  # type: ignore[arg-type]
