"""Which files of a code folder a code package holds, and which refuse the folder a package.

One walk of the folder that only lists and stats (``os.scandir``), so that a folder whose
package is cached costs milliseconds (:func:`scan`); the files' names and contents are checked
for credentials only when a package is built anew (:func:`refuse_credentials`).

- **Left out**: what the folder's ``.gitignore`` files ignore (the root one and nested ones, with
  git's semantics: a deeper file's match wins over a shallower one's, ``!`` re-includes, a
  ``dir/`` pattern matches folders only, and a file in an ignored folder cannot be re-included)
  and what its ``.aqignore`` ignores (same syntax, patterns relative to the code folder, checked
  before the ``.gitignore`` files: ``!x`` there re-includes a file git ignores); hidden folders,
  ``__pycache__`` and bytecode (``*.pyc``, ``*.pyo``); a symbolic link to a folder inside the
  code folder (never followed, so never a loop: its target is packaged where it really is).
  Matching is ``pathspec``'s ``GitIgnoreSpec``.
- **Packaged**: every other file, hidden files included (``.airflowignore``, a tool's
  ``.config.toml``: a command step may read them) unless refused below; a symbolic link to a file
  inside the folder, as that file's contents (a link to nothing is left out).
- **Refused** (:class:`PackageRefused`, naming the file and the fix): a file that looks like a
  credential by its name (``.env``, ``*.pem``, ``id_rsa``, ``credentials.json``, ...) or, for a
  text file, by its content (the spec scanner's shapes, ``artifacts.secret_shapes``: private keys,
  cloud keys, URIs with a password, tokens); a symbolic link out of the folder; a file that
  cannot be read; and a folder whose files come to more than the size limit. An ignored file is
  never looked at: an ignored ``.env`` is simply left out.
- **Refused** too: a symbolic link to a file the package would not hold under the file's own name
  (ignored, in a hidden or ignored folder, bytecode, or named like a credential): the rules apply
  to the link's target as well as to the link, so that ``settings.cfg -> .env`` cannot ship a
  gitignored ``.env``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import stat as stat_
from dataclasses import dataclass
from typing import BinaryIO

from pathspec import GitIgnoreSpec

from aq_airflow.artifacts.secret_shapes import PASSWORD_SETTING, SHAPES, find_secret

DEFAULT_SIZE_LIMIT = 50 * 2**20
GITIGNORE = ".gitignore"
AQIGNORE = ".aqignore"
# The bytes of a text file the credential scan reads (a key is near the top of the files that
# hold one); a NUL byte in its first 8 KiB makes a file binary, which is not scanned.
SCAN_BYTES = 1 << 20
_BINARY_PROBE = 8192
_SKIPPED_FOLDERS = GitIgnoreSpec.from_lines([".*/", "__pycache__/"])
_SKIPPED_FILES = GitIgnoreSpec.from_lines(["*.pyc", "*.pyo"])
# Files whose name says they hold a credential. Examples and templates (`.env.example`) are
# packaged, their content scanned like any file's.
CREDENTIAL_FILES = GitIgnoreSpec.from_lines(
    [
        ".env", ".env.*", "!.env.example", "!.env.sample", "!.env.template", "!.env.dist",
        "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.kdbx", "*.ppk",
        "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk",
        "credentials.json", "credentials.db", "client_secret*.json", "*service-account*.json",
        "*service_account*.json", ".netrc", "_netrc", ".pgpass", ".git-credentials", ".pypirc", ".npmrc",
        ".htpasswd", ".boto", ".s3cfg", ".dockercfg", "kubeconfig", ".kubeconfig",
    ]
)  # fmt: skip
_MOVE_IT = "move it out of the code folder (a step gets credentials as `{secret: name, key: k}` env values)"


def rules_fingerprint() -> str:
    """What a build decides by besides the files (which files count as credentials, by name and
    by content): a package cached under other rules is built again."""
    rules = [p.pattern for p in CREDENTIAL_FILES.patterns] + [SHAPES.pattern, PASSWORD_SETTING, str(SCAN_BYTES)]
    return hashlib.sha256(json.dumps(rules).encode()).hexdigest()[:16]


class PackageRefused(Exception):
    """The code folder cannot become a package: ``path`` (relative to the folder, or None for the
    package as a whole) and ``why``, which says how to fix it."""

    def __init__(self, folder: str, path: str | None, why: str):
        self.folder = folder
        self.path = path
        self.why = why
        where = f"{path} in the code folder {folder}" if path else f"the code folder {folder}"
        super().__init__(f"{where}: {why}")


@dataclass(frozen=True, slots=True)
class PackageFile:
    """One file the package holds: its path in the folder (``/``-separated), size, modification
    time and whether it is executable (the cache key is all four; the archive keeps the path,
    the contents and the executable bit only)."""

    path: str
    size: int
    mtime_ns: int
    executable: bool


class _IgnoreFile:
    """One ignore file's patterns, and the answers they gave in this process (a worker scans the
    same folder for task after task: the same question costs a lookup)."""

    __slots__ = ("answers", "spec")

    def __init__(self, spec: GitIgnoreSpec):
        self.spec = spec
        self.answers: dict[str, bool | None] = {}

    def decide(self, name: str) -> bool | None:
        """True: ignored; False: taken back (``!``); None: no pattern matches ``name``."""
        try:
            return self.answers[name]
        except KeyError:
            answer = self.answers[name] = self.spec.check_file(name).include
            return answer


# ignore files read in this process, by (path, size, mtime_ns, inode): an edited one is read again
_READ: dict[tuple[str, int, int, int], _IgnoreFile] = {}


@dataclass(frozen=True, slots=True)
class _Rules:
    """The ignore files that hold for one folder: ``.aqignore`` first, then the ``.gitignore``
    files from the deepest up, each with the folder it sits in (its patterns are relative to it)."""

    aqignore: _IgnoreFile | None
    gitignores: tuple[tuple[str, _IgnoreFile], ...]  # (folder relative to the root, "" at it)

    def ignored(self, relative: str, folder: bool) -> bool:
        name = relative + "/" if folder else relative
        if self.aqignore is not None:
            decided = self.aqignore.decide(name)
            if decided is not None:
                return decided
        for base, ignore in self.gitignores:
            decided = ignore.decide(name[len(base) + 1 :] if base else name)
            if decided is not None:
                return decided
        return False

    def below(self, base: str, path: str) -> _Rules:
        """These rules with the ``.gitignore`` at ``path`` (in folder ``base``) added, if any."""
        spec = _read_spec(path)
        return self if spec is None else _Rules(self.aqignore, ((base, spec), *self.gitignores))


def _read_spec(path: str) -> _IgnoreFile | None:
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    key = (path, info.st_size, info.st_mtime_ns, info.st_ino)
    if key not in _READ:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read(SCAN_BYTES).splitlines()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        if len(_READ) > 256:
            _READ.clear()
        _READ[key] = _IgnoreFile(GitIgnoreSpec.from_lines([line for line in lines if _valid_pattern(line)]))
    return _READ[key]


def _valid_pattern(line: str) -> bool:
    """Whether ``line`` is a pattern git would use: git skips one it cannot parse (a trailing
    ``\\``, ``!`` alone), and so does a package, rather than refusing the folder over it."""
    try:
        GitIgnoreSpec.from_lines([line])
    except (ValueError, re.error):  # pathspec's GitIgnorePatternError; a range such as `[b-a]`
        return False
    return True


def scan(folder: str, size_limit: int = DEFAULT_SIZE_LIMIT, exclude: frozenset[str] = frozenset()) -> list[PackageFile]:
    """The files of ``folder`` a package holds, in sorted path order: names and stats only, no
    file is read but the ignore files. Refuses (:class:`PackageRefused`) a symbolic link out of
    the folder, a folder or ignore file it cannot read, and files over ``size_limit`` bytes in all. Never follows a
    symbolic link to a folder. Credentials are :func:`refuse_credentials`' (a build checks them
    when no cached package holds these very files). ``exclude``: real paths of folders that are
    never code, whatever the ignore files say (the worker's artifact store and Airflow home, an
    ``aq-airflow run`` workdir, when they sit in the code folder)."""
    root = os.path.realpath(folder)
    if not os.path.isdir(root):
        raise PackageRefused(folder, None, "is not a folder: fix `code:` in the spec, or create the folder")
    found: list[PackageFile] = []
    try:
        aqignore = _read_spec(os.path.join(root, AQIGNORE))
    except OSError as error:
        raise PackageRefused(folder, AQIGNORE, f"cannot be read ({error.strerror}): make it readable") from None
    top = _Rules(aqignore, ())
    pending = [("", root, top)]
    while pending:
        base, current, rules = pending.pop()
        try:
            rules = rules.below(base, os.path.join(current, GITIGNORE))
            with os.scandir(current) as listed:
                entries = sorted(listed, key=lambda e: e.name)
        except OSError as error:  # a folder (or its .gitignore) this user may not read
            raise PackageRefused(
                folder, base or None, f"cannot be read ({error.strerror}): make it readable, or list it in {AQIGNORE}"
            ) from None
        for entry in entries:
            relative = f"{base}/{entry.name}" if base else entry.name
            if entry.is_dir(follow_symlinks=False):
                if exclude and os.path.realpath(entry.path) in exclude:
                    continue
                if not _SKIPPED_FOLDERS.match_file(entry.name + "/") and not rules.ignored(relative, folder=True):
                    pending.append((relative, entry.path, rules))
                continue
            if _skipped_file(entry.name) or rules.ignored(relative, folder=False):
                continue
            if entry.is_symlink():
                target = _inside(folder, root, relative, entry.path)
                if target is None:
                    continue  # a link to a folder inside: not followed
                _refuse_hidden_target(folder, root, top, relative, target)
            info = os.stat(entry.path) if entry.is_symlink() else entry.stat(follow_symlinks=False)
            if stat_.S_ISREG(info.st_mode):  # sockets and pipes are not code
                found.append(PackageFile(relative, info.st_size, info.st_mtime_ns, bool(info.st_mode & 0o111)))
    found.sort(key=lambda f: f.path)
    _check_size(folder, found, size_limit)
    return found


@functools.lru_cache(maxsize=4096)
def _skipped_file(name: str) -> bool:
    """Bytecode (names repeat across a folder's packages: asked once per name)."""
    return _SKIPPED_FILES.match_file(name)


def _inside(folder: str, root: str, relative: str, path: str) -> str | None:
    """For a symbolic link at ``path``: its target's path relative to the folder when it points to
    a file inside the folder (packaged as that file), None to a folder inside or to nothing (left
    out: a link someone's checkout left dangling holds no code); refused when it leads out of the
    folder."""
    target = os.path.realpath(path)
    if os.path.commonpath([root, target]) != root:
        raise PackageRefused(
            folder, relative,
            "is a symbolic link out of the code folder, which a package does not follow: copy the file in, or list "
            f"the link in {AQIGNORE}",
        )  # fmt: skip
    return os.path.relpath(target, root).replace(os.sep, "/") if os.path.isfile(target) else None


def _refuse_hidden_target(folder: str, root: str, top: _Rules, relative: str, target: str) -> None:
    """Refuses a link whose target the package would not hold under its own name: one in a hidden
    or ignored folder, an ignored file, bytecode, or a file named like a credential (``settings.cfg
    -> .env`` with ``.env`` ignored would otherwise ship the ``.env``'s contents, whose
    ``password=`` lines the content scan does not look for). Refused, not left out: the link is
    there for a reason, and a package quietly without it would fail later, far from the cause."""
    why = _excluded(root, top, target)
    if why is not None:
        raise PackageRefused(
            folder, relative,
            f"is a symbolic link to {target}, which {why}, so the package does not hold it through the link either: "
            f"remove the link, or list it in {AQIGNORE}",
        )  # fmt: skip


def _excluded(root: str, top: _Rules, target: str) -> str | None:
    """Why the package leaves out or refuses the file at ``target`` (relative to the folder), by
    the rules :func:`scan` and :func:`refuse_credentials` apply to its path; None if it holds it."""
    *folders, name = target.split("/")
    rules = top.below("", os.path.join(root, GITIGNORE))
    for depth, part in enumerate(folders, 1):
        base = "/".join(folders[:depth])
        if _SKIPPED_FOLDERS.match_file(part + "/"):
            return f"is in the hidden or cache folder {base}/"
        if rules.ignored(base, folder=True):
            return f"is in the ignored folder {base}/"
        rules = rules.below(base, os.path.join(root, *folders[:depth], GITIGNORE))
    if _skipped_file(name) or rules.ignored(target, folder=False):
        return "is ignored"
    if CREDENTIAL_FILES.match_file(name):
        return "looks like a credential file by its name"
    return None


def _check_size(folder: str, files: list[PackageFile], size_limit: int) -> None:
    total = sum(f.size for f in files)
    if total <= size_limit:
        return
    largest = ", ".join(f"{f.path} ({_size(f.size)})" for f in sorted(files, key=lambda f: -f.size)[:3])
    raise PackageRefused(
        folder, None,
        f"its files come to {_size(total)}, over the package limit of {_size(size_limit)} (largest: {largest}): keep "
        f"data out of the code folder (in the artifact store or the warehouse), list it in {AQIGNORE}, or raise "
        "the limit with `code_max_size:` in the spec",
    )  # fmt: skip


def _size(size: int) -> str:
    """A size as people read it: ``52.3 MiB``, ``12.0 KiB``, ``1,000 bytes``."""
    if size >= 2**20:
        return f"{size / 2**20:.1f} MiB"
    return f"{size / 2**10:.1f} KiB" if size >= 2**10 else f"{size:,} bytes"


def refuse_credentials(folder: str, files: list[PackageFile]) -> None:
    """Refuses the folder when a file among ``files`` is named like a credential, or a text file
    among them holds one (its first :data:`SCAN_BYTES`; binary files are skipped). The message
    says which file, which line and what it looks like, never the value. ``password=`` settings
    are not looked for: in code they are keyword arguments (``connect(password=pw)``)."""
    root = os.path.realpath(folder)
    for entry in files:
        if CREDENTIAL_FILES.match_file(entry.path.rpartition("/")[2]):
            raise PackageRefused(
                folder, entry.path, f"looks like a credential file by its name: list it in {AQIGNORE}, or {_MOVE_IT}"
            )
    for entry in files:
        with open_file(folder, root, entry.path) as handle:
            head = handle.read(SCAN_BYTES)
        if b"\0" in head[:_BINARY_PROBE]:
            continue
        text = head.decode("utf-8", errors="replace")
        found = find_secret(text, ignore=(PASSWORD_SETTING,))
        if found is not None:
            kind, offset = found
            line = text.count("\n", 0, offset) + 1
            raise PackageRefused(
                folder, entry.path,
                f"line {line} looks like a credential ({kind}): {_MOVE_IT}, or list the file in {AQIGNORE} if it "
                "must not be packaged",
            )  # fmt: skip


def open_file(folder: str, root: str, path: str) -> BinaryIO:
    """A packaged file opened for reading; one that cannot be read refuses the folder."""
    try:
        return open(os.path.join(root, *path.split("/")), "rb")
    except OSError as error:
        raise PackageRefused(
            folder, path, f"cannot be read ({error.strerror}): make it readable, or list it in {AQIGNORE}"
        ) from None
