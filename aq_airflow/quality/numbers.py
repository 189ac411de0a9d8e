"""Numbers as users write them, in the messages results carry and in what ``aq-airflow results``
prints: ``26500``, not ``2.65e+04``; ``0.8476``; an exponent only far from ordinary magnitudes."""

from __future__ import annotations

import decimal
import math

_DIGITS = 10  # significant digits of a float shown without an exponent
_PLAIN = (1e-4, 1e15)  # magnitudes shown without an exponent


def number(value: int | float | decimal.Decimal) -> str:
    """A number as users write it: integers (and whole floats) as integers (``26500``), other
    floats to ten significant digits without an exponent (``0.8476``, ``1234567.5``); an
    exponent only far from ordinary magnitudes (``1.5e-07``, ``2.1e+18``)."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, decimal.Decimal) and value.is_finite() and value == value.to_integral_value():
        return str(int(value))  # a warehouse NUMBER (Snowflake counts, sums): exact, however large
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude and not _PLAIN[0] <= magnitude < _PLAIN[1]:
        return f"{value:.6g}"
    if value.is_integer():
        return str(int(value))
    decimals = max(0, _DIGITS - 1 - math.floor(math.log10(magnitude)))
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".")
