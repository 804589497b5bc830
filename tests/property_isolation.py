"""Crash isolation for the property-based tests (``tests/test_properties_*.py``).

The property tests throw extreme inputs at the C++ ops; a defect there can kill the interpreter
(SIGSEGV, SIGABRT from a corrupted heap) or hang it.  Such a crash must fail one test, not end the
whole pytest run, so these tests run in a child pytest process.  The design, chosen so that
``make test`` (``pytest -q tests``) stays one plain pytest run that runs each property test once:

* The property modules are ordinary pytest files, collected as usual in the main process, so ``-k``,
  node ids, ``-x`` and ``--lf`` work and every property test is one line of the report.
* In the main process (``MPLE_PROPERTIES_IN_SUBPROCESS`` unset) their tests are not run there: when
  the first one is reached, one child ``python -m pytest -p no:cacheprovider <the selected node ids>``
  starts, with the same ``--hypothesis-*`` options (profile, seed, verbosity) and
  ``MPLE_PROPERTIES_IN_SUBPROCESS=1``.  The child runs them in-process and streams each test's
  reports, in pytest's own serialisable form (as pytest-xdist forwards them), to a file; the main
  process replays them as the results of its own items.  A failure therefore prints exactly as
  in-process, with hypothesis's falsifying example and reproduce blob.
* If the child dies while a test runs (a signal or ``os._exit``), or a test runs longer than
  ``MPLE_PROPERTIES_TIMEOUT`` seconds (default 300, 3600 under the ``thorough`` profile), that test
  fails with the cause, the tail of the child's stderr (faulthandler's traceback of the crash) and
  the last input the test recorded with :func:`record_example`; a new child runs the tests that
  remain.  A child that dies between tests is a warning (a new child runs the rest); one that exits
  without running any of its tests (say, a collection error) fails them with its output.
* ``MPLE_PROPERTIES_IN_SUBPROCESS=1 pytest tests/test_properties_lap.py`` runs them in the current
  process instead (for ``--pdb`` or a profiler).

One child for all selected property tests costs one interpreter start (about 2 s with torch), not
one per test or per module.  Forking per test was rejected: the ops run on torch's OpenMP pool,
which is not fork-safe once it has started.

``conftest.py`` imports the hooks below; this module imports nothing heavy, so its own test
(``test_property_isolation.py``) runs it on tiny fake modules without torch.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings

import pytest

ENV_IN_SUBPROCESS = "MPLE_PROPERTIES_IN_SUBPROCESS"
ENV_EVENTS = "MPLE_PROPERTIES_EVENTS"
ENV_EXAMPLE = "MPLE_PROPERTIES_EXAMPLE"
ENV_TIMEOUT = "MPLE_PROPERTIES_TIMEOUT"
PROPERTY_MODULES = "test_properties_*.py"
TAIL_LINES = 40

#: hypothesis's pytest options that the child must see too.
_FORWARDED_OPTIONS = (
    ("--hypothesis-profile", True),
    ("--hypothesis-seed", True),
    ("--hypothesis-verbosity", True),
    ("--hypothesis-show-statistics", False),
    ("--hypothesis-explain", False),
)

_state: dict = {}


def in_subprocess() -> bool:
    """True where property tests run in this process (the child, or a run asked to do so)."""
    return bool(os.environ.get(ENV_IN_SUBPROCESS))


def is_property_item(item: pytest.Item) -> bool:
    return fnmatch.fnmatch(item.path.name, PROPERTY_MODULES)


def record_example(**values: object) -> None:
    """Notes the input a property test is about to pass to an op, for the report of a crash.

    A no-op unless running in the child; overwrites the previous note (one file write per example).
    Tensors are written with dtype, shape, strides and their exact values.
    """
    path = os.environ.get(ENV_EXAMPLE)
    if not path:
        return
    lines = [os.environ.get("PYTEST_CURRENT_TEST", "?")]
    lines += [f"{name} = {_describe(value)}" for name, value in values.items()]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def _describe(value: object) -> str:
    if type(value).__module__.startswith("torch") and hasattr(value, "tolist") and hasattr(value, "stride"):
        return (f"tensor(dtype={value.dtype}, shape={tuple(value.shape)}, stride={value.stride()}, "
                f"device={value.device}, values={value.tolist()!r})")
    return repr(value)


# ----------------------------------------------------------------------------- hooks (conftest imports them)


def pytest_configure(config: pytest.Config) -> None:
    _state["config"] = config
    events = os.environ.get(ENV_EVENTS)
    if in_subprocess() and events:
        _state["events"] = open(events, "a", encoding="utf-8", buffering=1)


def pytest_unconfigure(config: pytest.Config) -> None:
    runner = _state.pop("runner", None)
    if runner is not None:
        runner.close()
    events = _state.pop("events", None)
    if events is not None:
        events.close()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    if in_subprocess() or not is_property_item(item):
        return None
    runner = _state.get("runner")
    if runner is None:
        runner = _state["runner"] = _ChildRunner(item.config, item.session)
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for report in runner.reports_for(item):
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def pytest_runtest_logstart(nodeid: str, location) -> None:
    _emit({"event": "start", "nodeid": nodeid})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "events" in _state:
        config = _state["config"]
        data = config.hook.pytest_report_to_serializable(config=config, report=report)
        _emit({"event": "report", "report": data})


def pytest_runtest_logfinish(nodeid: str, location) -> None:
    _emit({"event": "finish", "nodeid": nodeid})


def _emit(event: dict) -> None:
    stream = _state.get("events")
    if stream is not None:
        stream.write(json.dumps(event, default=repr) + "\n")
        stream.flush()


# ----------------------------------------------------------------------------- the main process's side


def _tail(path: str, lines: int = TAIL_LINES) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _stderr_excerpt(path: str) -> str:
    """The child's stderr from its last faulthandler dump (without pytest's and pluggy's frames), or
    its last lines."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return "--- its stderr could not be read ---"
    start = text.rfind("Fatal Python error")
    if start < 0:
        return f"--- last lines of its stderr ---\n{_tail(path)}"
    lines = [line for line in text[start:].splitlines()
             if not any(skip in line for skip in ("/_pytest/", "/pluggy/", "<frozen runpy>", "/pytest/__main__"))]
    return "--- its stderr from the crash (pytest frames left out) ---\n" + "\n".join(lines[:TAIL_LINES])


def _exit_description(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


class _ChildRunner:
    """Runs the session's property tests in child pytest processes and hands out their reports."""

    def __init__(self, config: pytest.Config, session: pytest.Session):
        self.config = config
        self.items = {i.nodeid: i for i in session.items if is_property_item(i)}
        self.order = list(self.items)
        self.results: dict[str, list] = {}
        self.done: set[str] = set()
        self.workdir = tempfile.mkdtemp(prefix="mple-properties-")
        self.events_path = os.path.join(self.workdir, "events.jsonl")
        self.stdout_path = os.path.join(self.workdir, "stdout.txt")
        self.stderr_path = os.path.join(self.workdir, "stderr.txt")
        self.example_path = os.path.join(self.workdir, "example.txt")
        profile = config.getoption("--hypothesis-profile", None)
        default_timeout = 3600.0 if profile == "thorough" else 300.0
        self.timeout = float(os.environ.get(ENV_TIMEOUT) or default_timeout)
        self.proc: subprocess.Popen | None = None

    # -- child processes

    def _command(self, nodeids: list[str]) -> list[str]:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               f"--rootdir={self.config.rootpath}"]
        if self.config.inipath is not None:
            cmd += ["-c", str(self.config.inipath)]
        for option, takes_value in _FORWARDED_OPTIONS:
            value = self.config.getoption(option, None)
            if takes_value and value is not None:
                cmd.append(f"{option}={value}")
            elif not takes_value and value:
                cmd.append(option)
        return cmd + nodeids

    def _start(self, nodeids: list[str]) -> None:
        for path in (self.events_path, self.example_path):
            open(path, "w").close()
        env = dict(os.environ)
        env.update({ENV_IN_SUBPROCESS: "1", ENV_EVENTS: self.events_path, ENV_EXAMPLE: self.example_path,
                    "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"})
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self._command(nodeids), cwd=self.config.rootpath, env=env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         start_new_session=True)
        self.requested = nodeids
        self.finished_here = 0
        self.offset = 0
        self.current: str | None = None
        self.current_reports: list = []
        self.current_since = 0.0

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def close(self) -> None:
        self._kill()
        self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- reports

    def reports_for(self, item: pytest.Item) -> list:
        if item.nodeid not in self.items:  # not in session.items (cannot happen in a normal run)
            self.items[item.nodeid] = item
            self.order.append(item.nodeid)
        while item.nodeid not in self.done:
            if self.proc is None:
                self._start([n for n in self.order if n not in self.done])
            self._pump()
        return self.results.pop(item.nodeid, [])

    def _read_events(self) -> bool:
        with open(self.events_path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        if end == 0:
            return False
        self.offset += end
        for line in data[:end].splitlines():
            event = json.loads(line)
            kind = event["event"]
            if kind == "start":
                self.current, self.current_reports = event["nodeid"], []
                self.current_since = time.monotonic()
            elif kind == "report":
                self.current_reports.append(self.config.hook.pytest_report_from_serializable(
                    config=self.config, data=event["report"]))
            elif kind == "finish":
                self.finished_here += 1
                self._finish(event["nodeid"], self.current_reports)
                self.current, self.current_reports = None, []
        return True

    def _finish(self, nodeid: str, reports: list) -> None:
        self.results[nodeid] = reports
        self.done.add(nodeid)

    def _pump(self) -> None:
        if self._read_events():
            return
        returncode = self.proc.poll()
        if returncode is None:
            if self.current is not None and time.monotonic() - self.current_since > self.timeout:
                # SIGABRT first: faulthandler then prints where the test hangs.
                self.proc.send_signal(signal.SIGABRT)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
                self._kill()
                self._read_events()
                if self.current is not None:
                    self._fail(self.current, f"did not finish within {self.timeout:g} s "
                               f"({ENV_TIMEOUT}); the property test process was killed")
                self.proc = None
            else:
                time.sleep(0.02)
            return
        self._read_events()
        self.proc = None
        if self.current is not None:
            self._fail(self.current, f"crashed: the property test process {_exit_description(returncode)} "
                       "while running this test")
            return
        missing = [n for n in self.requested if n not in self.done]
        if missing and self.finished_here:  # it died between tests: a new child runs the rest
            warnings.warn(pytest.PytestWarning(
                f"the property test process {_exit_description(returncode)} between tests; "
                f"stderr:\n{_stderr_excerpt(self.stderr_path)}"))
            return
        for nodeid in missing:
            self._fail(nodeid, f"was not run: the property test process {_exit_description(returncode)} "
                       "before running it", stdout=True)
        if not missing and returncode not in (0, 1):
            warnings.warn(pytest.PytestWarning(
                f"the property test process {_exit_description(returncode)} after its tests had finished; "
                f"stderr:\n{_stderr_excerpt(self.stderr_path)}"))

    def _fail(self, nodeid: str, what: str, stdout: bool = False) -> None:
        item = self.items.get(nodeid)
        parts = [f"{nodeid} {what}.", f"command: {' '.join(self._command([nodeid]))}"]
        with open(self.example_path, encoding="utf-8", errors="replace") as f:
            example = f.read()
        if example.startswith(nodeid + " "):
            parts.append("last input the test recorded:\n" + example.split("\n", 1)[1].rstrip())
        if stdout:
            parts.append(f"--- last lines of its stdout ---\n{_tail(self.stdout_path)}")
        parts.append(_stderr_excerpt(self.stderr_path))
        earlier = self.current_reports if nodeid == self.current else []
        report = pytest.TestReport(
            nodeid=nodeid, location=item.location if item else (nodeid, None, nodeid),
            keywords={k: 1 for k in item.keywords} if item else {}, outcome="failed",
            longrepr="\n".join(parts), when="teardown" if any(r.when == "call" for r in earlier) else "call",
            duration=time.monotonic() - self.current_since if self.current else 0.0)
        self._finish(nodeid, earlier + [report])
        if nodeid == self.current:
            self.current, self.current_reports = None, []
