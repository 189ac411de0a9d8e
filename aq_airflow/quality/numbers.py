"""Numbers as users write them, in the messages results carry and in what ``aq-airflow results``
prints: ``26500``, not ``2.65e+04``; ``0.8476``; an exponent only far from ordinary magnitudes."""

from __future__ import annotations

import decimal
import math

_DIGITS = 10  # significant digits of a float shown without an exponent
_PLAIN = (1e-4, 1e15)  # magnitudes shown without an exponent
# The integers shown in full, here and in `aq-airflow results --format json`: Python refuses to
# print an int of more than 4300 digits (sys.get_int_max_str_digits; the conversion is quadratic),
# so larger ones are shown by magnitude. The bound as digits (a Decimal's) and as bits (an int's:
# 2**13000 has 3914 digits, so every int within it prints).
EXACT_DIGITS = 3_900
EXACT_BITS = 13_000
_WIDE = decimal.Context(Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)  # any exponent a NUMERIC may hold


def _huge(value: int) -> str:
    """An integer too long for Python to print (it refuses past 4300 digits: quadratic), in
    linear time: its magnitude from the top 64 bits, ``1e+5000``."""
    shift = value.bit_length() - 64
    log = math.log10(abs(value) >> shift) + shift * math.log10(2)
    exponent = math.floor(log)
    return f"{'-' if value < 0 else ''}{10 ** (log - exponent):.6g}e+{exponent}"


def number(value: int | float | decimal.Decimal) -> str:
    """A number as users write it: integers (and whole floats) as integers (``26500``), other
    floats to ten significant digits without an exponent (``0.8476``, ``1234567.5``); an
    exponent only far from ordinary magnitudes (``1.5e-07``, ``2.1e+18``)."""
    if isinstance(value, int):
        return str(value) if value.bit_length() <= EXACT_BITS else _huge(value)
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return "nan"  # a NUMERIC NaN (a signalling one would not convert to float)
        if value.is_finite() and value == value.to_integral_value():
            if value.adjusted() < EXACT_DIGITS:
                return str(int(value))  # a warehouse NUMBER (Snowflake counts, sums): exact, however large
            return f"{value.normalize(_WIDE):.6g}"  # a NUMERIC of 10^5000: no int, no float can hold it
        if value.is_finite() and value and not 1e-300 < abs(value) < 1e300:
            return f"{value.normalize(_WIDE):.6g}"  # beyond a float's range: float() would say inf or 0
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
