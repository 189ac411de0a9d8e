"""Which tests are heavy, and the order the files start in (a pytest plugin, see tests/conftest.py).

Markers (registered in pyproject.toml): ``deployment`` and ``ui`` by folder, ``browser`` for the
Playwright file, ``wheel`` for every test that needs the built wheel in a fresh venv (it uses the
``core_venv`` or ``production_venv`` fixture), ``slow`` set on the tests themselves. ``make
test-fast`` deselects all five.

Order: ``make test`` gives each pytest-xdist worker a file at a time (``--dist loadfile``), so
the suite lasts at least as long as its longest file, and a long file that starts last makes the
others wait for it. The files are handed out heaviest first (their tests' heaviest marker, in
:data:`HEAVY_FIRST` order) and the short ones fill in around them; ``--no-loadscope-reorder``
keeps pytest-xdist from putting the files with the most tests first instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# every test under a folder (or in a file) carries these
PATH_MARKERS = {
    "tests/deployment/": ("deployment",),
    "tests/ui/": ("ui",),
    "tests/ui/test_browser.py": ("browser",),
}
WHEEL_FIXTURES = {"core_venv", "production_venv"}
HEAVY_FIRST = ("deployment", "ui", "wheel", "slow")


@pytest.hookimpl(tryfirst=True)  # the markers set before other plugins look at them
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        where = item.path.relative_to(REPO).as_posix()
        for prefix, names in PATH_MARKERS.items():
            if where.startswith(prefix):
                for name in names:
                    item.add_marker(name)
        if WHEEL_FIXTURES & set(item.fixturenames):
            item.add_marker("wheel")
    rank: dict[Path, int] = {}
    for item in items:
        marks = {mark.name for mark in item.iter_markers()}
        heaviest = min((i for i, name in enumerate(HEAVY_FIRST) if name in marks), default=len(HEAVY_FIRST))
        rank[item.path] = min(rank.get(item.path, heaviest), heaviest)
    items.sort(key=lambda item: rank[item.path])  # stable: a file's tests keep their order
