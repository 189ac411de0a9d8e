"""The git state a code package records (``artifacts.provenance.git_state``), on real git
repositories: clean and dirty checkouts, the remote URL without its credentials, a checkout owned
by another user (git-sync's), and that the repository's config runs nothing and locks nothing."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

import pytest

from aq_airflow.artifacts.provenance import GitState, Provenance, git_state, without_credentials
from aq_airflow.runtime import contract, record

IDENTITY = ["-c", "user.email=aq@example.com", "-c", "user.name=aq", "-c", "commit.gpgsign=false"]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *IDENTITY, *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    """A committed checkout: the code folder ``code/`` in it, and a file beside it."""
    top = tmp_path / "repo"
    (top / "code").mkdir(parents=True)
    (top / "code" / "steps.py").write_text("def run():\n    return 1\n")
    (top / "README.md").write_text("repo\n")
    (top / ".gitignore").write_text("*.log\n")
    git(top, "init", "-q")
    git(top, "add", ".")
    git(top, "commit", "-qm", "v1")
    return top


def test_a_clean_checkout_is_its_commit(repo):
    assert git_state(str(repo / "code")) == GitState(git(repo, "rev-parse", "HEAD"), dirty=False, remote=None)


@pytest.mark.parametrize(
    ("change", "dirty"),
    [
        (lambda r: (r / "code/steps.py").write_text("def run():\n    return 2\n"), True),  # a tracked file changed
        (lambda r: (r / "code/new.py").write_text("X = 1\n"), True),  # untracked: packaged, so not the commit
        (lambda r: (r / "code/run.log").write_text("x\n"), False),  # ignored by git: not packaged either
        (lambda r: (r / "README.md").write_text("changed\n"), False),  # outside the code folder
    ],
    ids=["modified", "untracked", "ignored", "outside"],
)
def test_a_dirty_checkout(repo, change, dirty):
    change(repo)
    state = git_state(str(repo / "code"))
    assert state is not None and state.commit == git(repo, "rev-parse", "HEAD") and state.dirty is dirty


def test_the_remote_is_recorded_without_credentials(repo):
    git(repo, "remote", "add", "origin", "https://deploy:hunter2@github.com/acme/steps.git")
    assert git_state(str(repo / "code")).remote == "https://github.com/acme/steps.git"
    assert without_credentials("https://ghp_token@github.com/acme/steps.git") == "https://github.com/acme/steps.git"
    assert without_credentials("ssh://git:pw@host:2222/acme/steps.git") == "ssh://host:2222/acme/steps.git"
    assert without_credentials("git@github.com:acme/steps.git") == "git@github.com:acme/steps.git"
    assert without_credentials("/srv/git/steps.git") == "/srv/git/steps.git"


def test_a_record_without_a_remote_is_read_as_one_with_none():
    """Manifests of a release before ``remote`` still read."""
    old = Provenance.from_json({"code": {"digest": "sha256:x", "git": {"commit": "abc", "dirty": False}}})
    assert old.code.git == GitState("abc", False, None)
    odd = Provenance.from_json({"code": {"digest": "sha256:x", "git": {"commit": "abc", "dirty": True, "remote": 7}}})
    assert odd.code.git == GitState("abc", True, None)


def test_the_step_reads_the_remote_its_runner_pinned():
    """The runner passes the pin's git state to the step as JSON (``AQ_CODE_GIT``)."""
    env = {contract.CODE_DIGEST: "sha256:x", contract.CODE_GIT: '{"commit": "abc", "dirty": false, "remote": "r"}'}
    assert record.code_version(env).git == GitState("abc", False, "r")
    env[contract.CODE_GIT] = '{"commit": "abc", "dirty": false}'
    assert record.code_version(env).git == GitState("abc", False, None)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give the repo away")
def test_a_checkout_owned_by_another_user_like_git_syncs(repo):
    """Git refuses a repository another user owns ("dubious ownership"), root included, unless
    ``safe.directory`` allows it: git-sync's checkout is another user's to the worker."""
    commit = git(repo, "rev-parse", "HEAD")
    give_away(repo)
    plain = subprocess.run(["git", "-C", str(repo / "code"), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert plain.returncode != 0 and "dubious ownership" in plain.stderr  # what git-sync's users hit
    assert git_state(str(repo / "code")) == GitState(commit, dirty=False, remote=None)


def give_away(folder: Path) -> None:
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.chown(os.path.join(parent, name), 65534, -1, follow_symlinks=False)
    os.chown(folder, 65534, -1)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give the repo away")
def test_a_git_sync_worktree_behind_a_link_owned_by_another_user(repo, tmp_path):
    """git-sync's layout: the dags folder is a link to a worktree of its repository (``.git`` a
    file there), all another user's."""
    commit = git(repo, "rev-parse", "HEAD")
    git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / ".worktrees" / "abc"), commit)
    (tmp_path / "current").symlink_to(tmp_path / ".worktrees" / "abc", target_is_directory=True)
    give_away(repo)
    give_away(tmp_path / ".worktrees")
    assert git_state(str(tmp_path / "current" / "code")) == GitState(commit, dirty=False, remote=None)


def test_the_repositorys_fsmonitor_program_is_not_run(repo, tmp_path):
    marker = tmp_path / "ran"
    hook = tmp_path / "fsmonitor.sh"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    hook.chmod(0o755)
    git(repo, "config", "core.fsmonitor", str(hook))
    assert git_state(str(repo / "code")).dirty is False
    assert not marker.exists()
    subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, check=True)
    assert marker.exists()  # plain git status would have run it: the check above can fail


def test_git_state_writes_no_index(repo):
    """``git status`` refreshes a stale index and writes it when it may lock it; git-sync may be
    updating the checkout at that moment."""
    index = repo / ".git" / "index"
    before = index.stat().st_mtime_ns
    time.sleep(0.01)
    os.utime(repo / "code" / "steps.py")  # the index's stat data no longer matches: a refresh would write
    assert git_state(str(repo / "code")).dirty is False
    assert index.stat().st_mtime_ns == before
    subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, check=True)
    assert index.stat().st_mtime_ns != before  # plain git status does: the check above can fail


def test_no_checkout_is_none_and_a_broken_one_is_logged(tmp_path, caplog):
    (tmp_path / "plain").mkdir()
    assert git_state(str(tmp_path / "plain")) is None
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / ".git").write_text("gitdir: /nowhere\n")
    with caplog.at_level(logging.WARNING, logger="aq_airflow.artifacts.provenance"):
        assert git_state(str(tmp_path / "broken")) is None
    assert "git failed in" in caplog.text and "git state is not recorded" in caplog.text
