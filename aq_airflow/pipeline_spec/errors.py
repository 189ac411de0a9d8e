"""Spec errors that point at a place in a file.

Every problem a user can make in a spec is reported as ``file:line:col: message``, the form
editors, CI annotations and ``grep`` all understand. Lines and columns are 1-based.
"""

from __future__ import annotations

from dataclasses import dataclass


def printable(text: str) -> str:
    """``text`` with any lone surrogate (undecodable bytes of a file name, a ``"\\ud800"``
    escape) replaced by U+FFFD, so that it always encodes as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:  # a file name's undecodable bytes: one U+FFFD each
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:
            return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec file, with its position (1-based line and column)."""

    file: str
    line: int
    col: int
    message: str

    def __post_init__(self) -> None:
        # a file name with bytes that are not UTF-8 (Python keeps them as lone surrogates) or a
        # message quoting such text would fail to print, to encode as UTF-8 or to store in a
        # database: each such character is shown as U+FFFD
        object.__setattr__(self, "file", printable(self.file))
        object.__setattr__(self, "message", printable(self.message))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "col": self.col, "message": self.message}


class SpecError(Exception):
    """A spec that cannot be compiled; carries every issue found, in file order."""

    def __init__(self, issues: list[SpecIssue]):
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.col, i.message))
        super().__init__("\n".join(str(i) for i in self.issues))
