"""The suite's pytest plugin: options, expectations, ``record`` and the JSON report.

Every test compares one fact and says so with ``record``::

    def test_ctk_version(expect, shell, record):
        got = containerprobes.parse_ctk_version(shell.run(*containerprobes.CTK_VERSION_ARGV).stdout)
        assert record("ctk-version", expect["container"]["toolkit"], got, got == ...)

``record(name, expected, actual, passed, detail="")`` stores a check and returns
``passed``; ``record.fail(...)`` stores a failed one and ends the test (when
nothing else can be checked); ``record.skip(name, reason)`` stores a skipped
check (only for a component the expectations say is absent) and skips the test.

Each module says which layer of the image it checks (``pytest.mark.layer("driver")``,
a test may add its own): a test runs only when the image has every layer its
marks name (``expectations["layers"]``), and is skipped, with that reason,
otherwise, never failed. A test that
fails without having recorded a failed check (an exception, a dead SSH
connection) is recorded as a failed check too, so the report never says less
than pytest does. At the end the report is written to ``--golden-report``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from golden import pkgprobes
from golden.verify import PHASES, Check, Report
from verify.lib import DriverExpect, Record, Shell, driver_expect

#: Must equal golden.plan.EXPECTATIONS_SCHEMA (a unit test holds them together); the suite
#: runs on the image without golden's plan code, so it keeps its own copy.
EXPECTATIONS_SCHEMA = 1
#: The layer of a check that names none: always present.
BASE_LAYER = "base"
EXPECT = pytest.StashKey[dict[str, Any]]()
RECORDER = pytest.StashKey["Recorder"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("golden", "golden verification")
    group.addoption("--golden-expectations", metavar="PATH",
                    help="expectations.json of the build (required)")
    group.addoption("--golden-phase", choices=PHASES, default="bake",
                    help="which checks to run (default: bake)")
    group.addoption("--golden-report", metavar="PATH", help="where to write the JSON report")
    group.addoption("--golden-host", metavar="SPEC", help="the host as the user named it")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("golden_expectations")
    if not path:
        raise pytest.UsageError("--golden-expectations is required")
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise pytest.UsageError(f"cannot read expectations {path}: {e}") from None
    if not isinstance(data, dict) or data.get("schema") != EXPECTATIONS_SCHEMA:
        raise pytest.UsageError(f"{path}: not expectations schema {EXPECTATIONS_SCHEMA}")
    config.stash[EXPECT] = data
    recorder = Recorder(config)
    config.stash[RECORDER] = recorder
    config.pluginmanager.register(recorder, "golden-recorder")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per package for ``package``, ``held_package`` and ``pinned_package``."""
    packages: list[dict[str, Any]] = metafunc.config.stash[EXPECT].get("packages", [])
    selectors: dict[str, Callable[[dict[str, Any]], bool]] = {
        "package": lambda p: True,
        "held_package": lambda p: bool(p.get("hold")),
        "pinned_package": lambda p: bool(p.get("version") or p.get("pattern")),
    }
    for argname, select in selectors.items():
        if argname in metafunc.fixturenames:
            chosen = [p for p in packages if select(p)]
            metafunc.parametrize(argname, chosen, ids=[str(p["name"]) for p in chosen])


class Recorder:
    """Collects the checks of one run and writes the report at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.checks: list[Check] = []
        self.by_test: dict[str, list[Check]] = {}
        self.names: dict[str, str] = {}

    def add(self, nodeid: str, check: Check) -> None:
        self.checks.append(check)
        self.by_test.setdefault(nodeid, []).append(check)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        phase = config.getoption("golden_phase")
        present = image_layers(config.stash[EXPECT])
        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        for item in items:
            marker = item.get_closest_marker("phase")
            (keep if marker and phase in marker.args else drop).append(item)
            self.names[item.nodeid] = _display_name(item)
            missing = missing_layer(item, present)
            if missing is not None:
                item.add_marker(pytest.mark.skip(reason=f"layer {missing} not in this image"))
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.add(report.nodeid, Check(f"collect[{report.nodeid}]", "the suite to load",
                                          "error", False, _last_line(report.longreprtext)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = self.names.get(report.nodeid, report.nodeid)
        mine = self.by_test.get(report.nodeid, [])
        if report.failed and not any(c.status == "failed" for c in mine):
            message = _crash_message(report)
            self.add(report.nodeid, Check(name, "the check to run", f"error: {message[:160]}",
                                          False, message))
        elif report.skipped and not mine:
            self.add(report.nodeid, Check(name, "not checked", "not checked", True,
                                          _skip_reason(report), skipped=True))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            self.add("", Check("suite", "pytest exit status 0 or 1",
                               f"exit status {int(exitstatus)}", False,
                               "the suite did not run to the end"))
        path = self.config.getoption("golden_report")
        if not path:
            return
        expect = self.config.stash[EXPECT]
        host = self.config.getoption("golden_host") or self.config.getoption("hosts") or "local://"
        report = Report(profile=str(expect.get("profile")),
                        phase=self.config.getoption("golden_phase"), host=str(host),
                        checks=tuple(self.checks))
        report.write(Path(path))


def image_layers(expect: dict[str, Any]) -> frozenset[str] | None:
    """The layers the image has; None (all of them) for expectations written before layers."""
    layers = expect.get("layers")
    return None if layers is None else frozenset({BASE_LAYER, *(str(x) for x in layers)})


def missing_layer(item: pytest.Item, present: frozenset[str] | None) -> str | None:
    """The first layer a test's marks name (its own, then its module's) that the image lacks."""
    if present is None:
        return None
    for marker in item.iter_markers("layer"):
        for name in marker.args:
            if name not in present:
                return str(name)
    return None


def _display_name(item: pytest.Item) -> str:
    """``test_package[nvidia-open]`` -> ``package[nvidia-open]``, without the host id."""
    base = getattr(item, "originalname", item.name).removeprefix("test_").replace("_", "-")
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return str(base)
    subjects = [str(v["name"]) if isinstance(v, dict) and "name" in v else str(v)
                for k, v in callspec.params.items() if k != "_testinfra_host"]
    return f"{base}[{'-'.join(subjects)}]" if subjects else str(base)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _crash_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    return _last_line(str(message)) if message else _last_line(report.longreprtext)


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return _last_line(report.longreprtext)


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Record:
    recorder = request.config.stash[RECORDER]
    nodeid = request.node.nodeid
    return Record(lambda check: recorder.add(nodeid, check))


@pytest.fixture(scope="session")
def expect(pytestconfig: pytest.Config) -> dict[str, Any]:
    """expectations.json as loaded (see golden.plan.BuildPlan.expectations)."""
    return pytestconfig.stash[EXPECT]


@pytest.fixture(scope="module")
def shell(host: Any) -> Shell:
    return Shell(host)


@pytest.fixture(scope="module")
def packages(shell: Shell) -> dict[str, pkgprobes.DebPackage]:
    """Every package dpkg knows on the image, by name (an installed entry wins)."""
    out = shell.run(*pkgprobes.dpkg_query_argv())
    if not out.ok:
        raise RuntimeError(f"dpkg-query failed (exit {out.rc}): {_last_line(out.stderr)}")
    found: dict[str, pkgprobes.DebPackage] = {}
    for pkg in pkgprobes.parse_dpkg(out.stdout):
        if pkg.name not in found or (pkg.installed and not found[pkg.name].installed):
            found[pkg.name] = pkg
    return found


@pytest.fixture(scope="module")
def driver(expect: dict[str, Any], packages: dict[str, pkgprobes.DebPackage]) -> DriverExpect:
    """The driver version components must report (see verify.lib.DriverExpect); a test that
    asks for it on an image without a driver is skipped (its layer marks should say so)."""
    if not expect.get("driver"):
        pytest.skip("layer driver not in this image")
    return driver_expect(expect, packages)
