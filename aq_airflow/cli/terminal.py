"""Text from the warehouse made safe and bounded for a terminal, in time linear in its size.

What a results table holds was written by pipelines, and by anyone who can write to the
warehouse: a message may carry escape sequences (ESC ``[2J`` clears a screen, OSC sequences
set window titles or links), carriage returns that overwrite what a line said, bidi overrides
that reorder it, megabytes of text. The table output shows every character a terminal would act
on as an escape (``\\x1b``, ``\\r``, ``\\u202e``) and cuts a value at a limit *before* anything
else looks at it (wrapping, padding): a 20 MB message costs what its first few hundred
characters cost. ``--format json`` keeps values whole; JSON escapes controls itself.

A backslash already in the text is left as it is (no round trip is promised: the JSON output
is the exact form), so ``\\x1b`` typed into a message looks like an escaped ESC. That is harmless.
"""

from __future__ import annotations

import unicodedata

ELLIPSIS = "…"
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _shown(char: str, newlines: bool) -> str:
    """A character as a terminal may get it: printable ones (and spaces of any script) as they
    are, a newline when ``newlines``, everything else escaped: C0 and C1 controls (ESC, CR, BEL,
    NEL), format characters (bidi overrides and isolates, zero-width ones), line and paragraph
    separators, surrogates, unassigned code points."""
    if char.isprintable() or (char == "\n" and newlines):
        return char
    if unicodedata.category(char) == "Zs":  # a no-break or ideographic space: only a space
        return char
    return _escape(char)


def visible(text: str, newlines: bool = False) -> str:
    """``text`` with every character a terminal would act on shown escaped (``\\x1b``); a newline
    kept when ``newlines`` (a wrapped column), else shown as ``\\n`` (a one-line cell). Linear;
    call it on text already cut (:func:`bounded`) when the text may be large."""
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(_shown(char, newlines) for char in text)


def bounded(text: str, limit: int, newlines: bool = False, more: bool = False) -> tuple[str, bool]:
    """(``text`` shown :func:`visible` in at most ``limit`` characters, whether it was cut). Only
    the first ``limit`` characters are ever looked at; escapes count at their shown length and
    are never split, so a value of controls is cut earlier than one of letters. A cut value ends
    in :data:`ELLIPSIS`, within the limit; ``more``: ``text`` is already the head of a longer
    value, so it is marked cut whatever its length."""
    limit = max(1, int(limit))
    head = text[: limit + 1]  # one more: a value of exactly ``limit`` characters is not cut
    shown = visible(head, newlines)
    if len(shown) <= limit and len(head) <= limit and not more:
        return shown, False
    room, parts, used = limit - len(ELLIPSIS), [], 0
    for char in head:
        piece = _shown(char, newlines)
        if used + len(piece) > room:
            break
        parts.append(piece)
        used += len(piece)
    return "".join(parts) + ELLIPSIS, True
