"""The crash isolation of the property tests (property_isolation.py), run on a fake property module.

A pytest run of a directory whose ``test_properties_fake.py`` segfaults, aborts, hangs, fails and
xfails in some tests must report each test once, with a crash as one failed test that names the
signal and shows the child's stderr (faulthandler's traceback) and the recorded input, and must go on
to run the tests after it.  The fake module imports nothing heavy, so this takes a few seconds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent

FAKE_MODULE = '''
import ctypes
import os
import time

import pytest

from property_isolation import record_example


def ran(name):
    with open(os.environ["FAKE_RAN_LOG"], "a") as f:
        f.write(name + "\\n")


def test_first_passes():
    ran("first")


def test_segfaults():
    ran("segfault")
    record_example(cost=[[1.0, float("nan")]], note="the crashing input")
    ctypes.string_at(0)


def test_after_segfault_passes():
    ran("after_segfault")


def test_fails_normally():
    ran("fails")
    assert 1 + 1 == 3, "an ordinary failure"


def test_aborts():
    ran("abort")
    os.abort()


@pytest.mark.xfail(strict=True, reason="a known defect")
def test_known_defect():
    ran("xfail")
    assert False


def test_hangs():
    ran("hang")
    time.sleep(120)


def test_last_passes():
    ran("last")
'''


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("isolation")
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "conftest.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from property_isolation import (  # noqa: F401
            pytest_configure, pytest_runtest_logfinish, pytest_runtest_logreport,
            pytest_runtest_logstart, pytest_runtest_protocol, pytest_unconfigure)
    """))
    (root / "test_properties_fake.py").write_text(FAKE_MODULE)
    log = root / "ran.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPLE_PROPERTIES_")}
    env.update(FAKE_RAN_LOG=str(log), MPLE_PROPERTIES_TIMEOUT="3")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider",
                           "-p", "no:randomly", str(root)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)
    return proc, log.read_text().split()


def test_every_fake_test_runs_once(fake_run):
    _, ran = fake_run
    assert sorted(ran) == sorted(["first", "segfault", "after_segfault", "fails", "abort", "xfail",
                                  "hang", "last"]), ran


def test_outcomes_are_reported_per_test(fake_run):
    proc, _ = fake_run
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert re.search(r"4 failed, 3 passed, 1 xfailed", out), out
    for name in ("test_first_passes", "test_after_segfault_passes", "test_last_passes"):
        assert re.search(rf"PASSED \S*::{name}\b", out), out
    for name in ("test_segfaults", "test_fails_normally", "test_aborts", "test_hangs"):
        assert re.search(rf"FAILED \S*::{name}\b", out), out
    assert re.search(r"XFAIL \S*::test_known_defect", out), out


def test_a_crash_names_the_signal_and_shows_stderr_and_input(fake_run):
    out = fake_run[0].stdout
    assert "test_segfaults crashed: the property test process was killed by SIGSEGV" in out, out
    assert "Segmentation fault" in out and "in test_segfaults" in out, out  # faulthandler's traceback
    assert "the crashing input" in out, out
    assert "test_aborts crashed: the property test process was killed by SIGABRT" in out, out
    assert "test_hangs did not finish within 3 s" in out, out
    assert "in test_hangs" in out, out  # where it hung, from faulthandler on SIGABRT


def test_an_ordinary_failure_prints_as_in_process(fake_run):
    out = fake_run[0].stdout
    assert "AssertionError: an ordinary failure" in out, out
    assert "assert (1 + 1) == 3" in out, out
