"""Which tests are heavy, and how ``make test`` spreads the files over the workers (a pytest
plugin, see tests/conftest.py).

Markers (registered in pyproject.toml): ``deployment`` and ``ui`` by folder, ``browser`` for the
Playwright file, ``wheel`` for every test that needs the built wheel in a fresh venv (it uses the
``core_venv`` or ``production_venv`` fixture), ``slow`` set on the tests themselves. ``make
test-fast`` deselects all five.

Spreading: ``make test`` gives each pytest-xdist worker a file at a time (``--dist loadfile``), so
the suite lasts at least as long as its longest file, and a long file that starts last makes the
others wait for it. So (1) the files are handed out heaviest first (their tests' heaviest marker,
in :data:`HEAVY_FIRST` order), the short ones filling in around them, where pytest-xdist would put
the files with the most tests first; (2) a file in :data:`SPLIT` goes out as one unit per value
of its module-scoped parameter (the deployment tests: one running Airflow per executor), so its
halves run on two workers at once, each still setting its stack up once.
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
# file -> the values of its module-scoped parameter: a unit of work for each
SPLIT = {"tests/deployment/test_deployment.py": ("LocalExecutor", "CeleryExecutor")}


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


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before pytest-xdist's own choice
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """For ``--dist loadfile``: its scheduling, with the files in the order of the collection
    (set above) and the files of :data:`SPLIT` in one unit per parameter value."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class HeaviestFirst(LoadFileScheduling):
        def __init__(self, config, log=None):
            super().__init__(config, log)
            config.option.loadscopereorder = False  # the order of the collection, heaviest first

        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            parameters = nodeid.partition("[")[2]
            for value in SPLIT.get(scope, ()):
                if value in parameters:
                    return f"{scope}[{value}]"
            return scope

    return HeaviestFirst(config, log)
