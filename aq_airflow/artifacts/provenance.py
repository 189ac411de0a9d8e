"""Provenance: what made a step's output, recorded in its manifest (``"provenance"``).

The manifest is the output's commit marker, so the record and the data it describes are committed
together. Written by whoever commits the output (the runtime for a python step, the operator for a
command step's files), read by ``aq-airflow show`` and ``diff``, the quality pages, the
``schema_change`` check and the results rows (code digest and image). One type, so that none of
them decodes the JSON by hand.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any

PROVENANCE = "provenance"  # the manifest's key


@dataclass(frozen=True, slots=True)
class GitState:
    """The code folder's git checkout: its ``HEAD`` commit and whether files differ from it."""

    commit: str
    dirty: bool


@dataclass(frozen=True, slots=True)
class CodeVersion:
    """The code package a step ran (``artifacts.code_package``): its digest and location."""

    digest: str
    uri: str | None = None
    git: GitState | None = None


@dataclass(frozen=True, slots=True)
class ImageVersion:
    """The image as the spec names it, and its digest where the pod's status reported one."""

    name: str
    digest: str | None = None


@dataclass(frozen=True, slots=True)
class InputVersion:
    """One input: the step that produced it, where, and the sha256 of that output's manifest
    (which itself holds every file's digest: one value pins the whole input)."""

    step: str
    uri: str
    manifest_digest: str | None


@dataclass(frozen=True, slots=True)
class Provenance:
    code: CodeVersion | None = None  # None: the image's own copy of the code (`code: image`), or a sql step
    image: ImageVersion | None = None  # None: a local process
    spec_hash: str | None = None
    args: dict[str, Any] = field(default_factory=dict)  # as rendered for this run
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, InputVersion] = field(default_factory=dict)  # by the name the step binds
    run_id: str | None = None
    logical_date: str | None = None  # ISO 8601; the run's date (``run_after`` when it has none)
    try_number: int | None = None
    started: str | None = None  # ISO 8601, UTC
    finished: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Provenance | None:
        """The record as :meth:`to_json` wrote it; None for a manifest without one (an output
        of a release before provenance) or one that is not an object."""
        if not isinstance(data, dict):
            return None
        code = data.get("code") if isinstance(data.get("code"), dict) else None
        image = data.get("image") if isinstance(data.get("image"), dict) else None
        git = code.get("git") if code and isinstance(code.get("git"), dict) else None
        inputs = data.get("inputs") if isinstance(data.get("inputs"), dict) else {}
        return cls(
            code=CodeVersion(
                str(code.get("digest")),
                _text(code.get("uri")),
                GitState(str(git.get("commit")), bool(git.get("dirty"))) if git else None,
            )
            if code
            else None,
            image=ImageVersion(str(image.get("name")), _text(image.get("digest"))) if image else None,
            spec_hash=_text(data.get("spec_hash")),
            args=data.get("args") if isinstance(data.get("args"), dict) else {},
            params=data.get("params") if isinstance(data.get("params"), dict) else {},
            inputs={
                str(name): InputVersion(str(i.get("step")), str(i.get("uri")), _text(i.get("manifest_digest")))
                for name, i in inputs.items()
                if isinstance(i, dict)
            },
            run_id=_text(data.get("run_id")),
            logical_date=_text(data.get("logical_date")),
            try_number=data.get("try_number") if isinstance(data.get("try_number"), int) else None,
            started=_text(data.get("started")),
            finished=_text(data.get("finished")),
        )

    @classmethod
    def of(cls, manifest: dict) -> Provenance | None:
        """The provenance a committed manifest records, or None."""
        return cls.from_json(manifest.get(PROVENANCE))


def _text(value: object) -> str | None:
    """A recorded string, or None for any other value (a damaged record's number where a time
    belongs would otherwise be compared with the times of the other steps)."""
    return value if isinstance(value, str) else None


def git_state(folder: str) -> GitState | None:
    """The git commit ``folder`` is checked out at and whether its files differ from it (the
    folder only, not the rest of the repository); None when it is not in a git checkout or git is
    not installed."""
    try:
        head = subprocess.run(
            ["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", folder, "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return GitState(head.stdout.strip(), bool(status.stdout.strip()) or status.returncode != 0)
