#!/usr/bin/python3
"""Run the integration tests: python3 test/integration/run.py [--failfast] [PATTERN...]

PATTERN selects test modules by name (test_api, 'test_*retry*', api) or, when it has a
dot, names a test directly (test_api.ApiTest.test_health). The last line printed is
always `N passed, N failed`; a skipped test or an error counts as failed.
"""

from __future__ import annotations

import fnmatch
import signal
import sys
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402  (needs the path above)

SLOW_S = 5.0
LAST_MODULES = ["test_openapi"]


class CountingResult(unittest.TextTestResult):
    """Records one outcome per test (a failed subtest fails its test) and how long each took."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcome: dict[str, bool] = {}  # test id -> passed
        self.timings: list[tuple[float, str]] = []
        self._t0: dict[str, float] = {}

    def _mark(self, test, ok: bool) -> None:
        tid = test.id()
        self.outcome[tid] = self.outcome.get(tid, True) and ok

    def startTest(self, test):
        self._t0[test.id()] = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        t0 = self._t0.pop(test.id(), None)
        if t0 is not None:
            self.timings.append((time.monotonic() - t0, test.id()))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._mark(test, True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._mark(test, False)

    def addError(self, test, err):
        # Also setUpClass/module errors, whose "test" is a placeholder: one failure each.
        super().addError(test, err)
        self._mark(test, False)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._mark(test, False)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._mark(test, True)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._mark(test, False)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._mark(test, False)


def load(patterns: list[str]) -> unittest.TestSuite:
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    # LAST_MODULES run after all the others, in this order: test_openapi validates the
    # responses that every other module's requests recorded (harness.record_path()).
    modules = sorted((p.stem for p in HERE.glob("test_*.py")),
                     key=lambda m: (LAST_MODULES.index(m) if m in LAST_MODULES else -1, m))
    names = [p for p in patterns if "." in p]
    globs = [p for p in patterns if "." not in p]
    for name in names:
        suite.addTests(loader.loadTestsFromName(name))
    for mod in modules:
        if patterns and not any(mod == g or fnmatch.fnmatch(mod, g) or g in mod for g in globs):
            continue
        suite.addTests(loader.loadTestsFromName(mod))
    return suite


def main(argv: list[str]) -> int:
    # Line-buffered so our lines and the runner's interleave right through a pipe (tee).
    sys.stdout.reconfigure(line_buffering=True)
    # SIGTERM (e.g. from timeout(1)) unwinds like Ctrl-C, so the servers get stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    failfast = "--failfast" in argv or "-f" in argv
    patterns = [a for a in argv if a not in ("--failfast", "-f")]
    if any(a in ("-h", "--help") for a in patterns):
        print(__doc__.strip())
        return 0

    suite = load(patterns)
    if suite.countTestCases() == 0:
        print(f"no integration tests match {' '.join(patterns) or '(all)'}", file=sys.stderr)
        print("0 passed, 0 failed")
        return 1

    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=CountingResult,
                                     failfast=failfast)
    try:
        result = runner.run(suite)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the test servers", file=sys.stderr)
        return 130
    finally:
        harness.cleanup_all()

    per_module: dict[str, float] = {}
    for secs, tid in result.timings:
        per_module[tid.split(".")[0]] = per_module.get(tid.split(".")[0], 0.0) + secs
    if len(per_module) > 1:
        print("seconds per module: " + ", ".join(
            f"{mod} {secs:.0f}" for mod, secs in sorted(per_module.items(),
                                                        key=lambda kv: -kv[1])))
    slow = sorted((t for t in result.timings if t[0] > SLOW_S), reverse=True)
    if slow:
        print(f"tests slower than {SLOW_S:g}s:")
        for secs, tid in slow:
            print(f"  {secs:6.1f}s  {tid}")
    passed = sum(1 for ok in result.outcome.values() if ok)
    failed = sum(1 for ok in result.outcome.values() if not ok)
    sys.stderr.flush()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
