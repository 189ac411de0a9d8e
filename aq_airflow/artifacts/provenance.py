"""Provenance: what made a step's output, recorded in its manifest (``"provenance"``).

The manifest is the output's commit marker, so the record and the data it describes are committed
together. Written by whoever commits the output (the runtime for a python step, the operator for a
command step's files), read by ``aq-airflow show`` and ``diff``, the quality pages, the
``schema_change`` check and the results rows (code digest and image). One type, so that none of
them decodes the JSON by hand.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

PROVENANCE = "provenance"  # the manifest's key


@dataclass(frozen=True, slots=True)
class GitState:
    """The code folder's git checkout: its ``HEAD`` commit, whether files differ from it, and the
    repository's ``origin`` remote URL (without any ``user:password@``), None when it has none."""

    commit: str
    dirty: bool
    remote: str | None = None

    @classmethod
    def of(cls, data: dict) -> GitState:
        """The state as :func:`dataclasses.asdict` wrote it (a record without ``remote`` is one of a
        release before it)."""
        remote = data.get("remote")
        return cls(str(data.get("commit")), bool(data.get("dirty")), remote if isinstance(remote, str) else None)


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
                GitState.of(git) if git else None,
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
    """The git commit ``folder`` is checked out at, whether its files differ from it (the folder
    only, not the rest of the repository) and the repository's ``origin`` URL; None when it is not
    in a git checkout, git is not installed or git fails (logged).

    Git runs as in a deployment's dags folder, which git-sync (or a CI job) checked out as another
    user: ``safe.directory`` is set to the checkout on the command line, or git would refuse the
    repository for its "dubious ownership" and say nothing useful here. ``core.fsmonitor`` is off,
    since the repository's config could name a program to run, and ``--no-optional-locks`` keeps
    ``git status`` from writing the index under git-sync while it updates the checkout.

    "Dirty" is what ``git status`` reports for the folder: a changed tracked file, or an untracked
    one that git does not ignore. Files git ignores are not packaged either (unless ``.aqignore``
    takes one back), so they do not count; an untracked file the package leaves out only through
    ``.aqignore`` still does (the checkout is not its commit, even if the package could be)."""
    top = _checkout(os.path.realpath(folder))
    if top is None:
        return None
    git = ["git", "--no-optional-locks", "-c", f"safe.directory={top}", "-c", "core.fsmonitor=false", "-C", folder]
    try:
        head = _git(git, "rev-parse", "--verify", "HEAD")
        status = _git(git, "status", "--porcelain", "--", ".")
        remote = _git(git, "config", "--get", "remote.origin.url")
    except FileNotFoundError:
        log.debug("git is not installed: no git state for %s", folder)
        return None
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("git failed in %s, its git state is not recorded: %s", folder, error)
        return None
    for done in (head, status):
        if done.returncode != 0:
            log.warning("git failed in %s, its git state is not recorded: %s", folder, done.stderr.strip())
            return None
    url = remote.stdout.strip() if remote.returncode == 0 else ""
    return GitState(head.stdout.strip(), bool(status.stdout.strip()), without_credentials(url) or None)


def _checkout(folder: str) -> str | None:
    """The top of the git checkout holding ``folder`` (the nearest folder up with a ``.git``
    folder or file), or None."""
    current = folder
    while True:
        if os.path.exists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _git(git: list[str], *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}
    return subprocess.run([*git, *args], capture_output=True, text=True, timeout=10, check=False, env=environment)


def without_credentials(url: str) -> str:
    """A remote URL without the ``user:password@`` (or token) a clone URL may carry: it is
    recorded in manifests and lineage events. An scp-like ``git@host:org/repo`` names a user and
    no password, and is kept."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
