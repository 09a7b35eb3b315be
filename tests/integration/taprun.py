#!/usr/bin/python3
# Runs one unittest file and reports every test case on stdout as TAP (meson `protocol : 'tap'`).
"""Usage: taprun.py tests/integration/test_x.py [NAME...]

Every test case is one TAP line, so meson and `tools/dev test` count cases, not files:
    ok 3 - test_pam.PamWithAgent.test_right_pin
    ok 4 - test_pam.PamWithAgent.test_wrong_pin # SKIP reason
    not ok 5 - test_pam.PamWithAgent.test_old_pin
A skipped setUpClass/setUpModule is one skip per test of that class/module, a failed one one
failure per test; a failing tearDownClass/tearDownModule is a failure of its own. Failing
subTests fail their test. With MAMORI_REQUIRE_ALL=1 (set by .ci/run) a skip is a failure: CI
has every prerequisite, so a test that cannot run there is broken.

stdout is TAP only: the file descriptor 1 the tests (and the programs they start) see is this
process's stderr; the human log (each case, its time, tracebacks) goes to stderr too, which
`meson test --print-errorlogs` shows for a failed file. NAME... keeps only the cases whose id
contains one of the NAMEs (like `python3 -m unittest -k`). Exit status 0 when no case failed."""

import importlib
import os
import sys
import time
import traceback
import unittest
import unittest.util
import unittest.suite

REQUIRE_ALL = os.environ.get('MAMORI_REQUIRE_ALL') == '1'


def flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from flatten(t)
        else:
            yield t


class TapResult(unittest.TestResult):
    """Collects each case's outcome and writes its TAP line when the case ends."""

    def __init__(self, tap, log, tests):
        super().__init__()
        self.tap = tap
        self.log = log
        self.number = 0
        self.bad = 0
        self.by_class = {}
        self.by_module = {}
        for t in tests:
            self.by_class.setdefault(unittest.util.strclass(t.__class__), []).append(t.id())
            self.by_module.setdefault(t.__class__.__module__, []).append(t.id())
        self.outcome = None

    # --- one line per case ---

    def emit(self, name, status, reason='', details=''):
        """status: ok, fail, skip, xfail."""
        self.number += 1
        if status == 'skip' and REQUIRE_ALL:
            status, reason = 'fail', f'skipped, but MAMORI_REQUIRE_ALL=1 requires it: {reason}'
        reason = ' '.join(str(reason).split())
        if status == 'ok':
            line = f'ok {self.number} - {name}'
        elif status == 'skip':
            line = f'ok {self.number} - {name} # SKIP {reason}'
        elif status == 'xfail':
            line = f'not ok {self.number} - {name} # TODO expected failure'
        else:
            self.bad += 1
            line = f'not ok {self.number} - {name}'
        print(line, file=self.tap, flush=True)
        if status == 'fail' and reason:
            print(f'# {reason}', file=self.tap, flush=True)
        if details:
            self.log.write(details if details.endswith('\n') else details + '\n')
        self.log.flush()

    def err_text(self, err):
        return ''.join(traceback.format_exception(*err))

    def startTest(self, test):
        super().startTest(test)
        self.outcome = ['ok', '', '']
        self.started = time.monotonic()
        print(f'--- {test.id()}', file=self.log, flush=True)

    def stopTest(self, test):
        super().stopTest(test)
        status, reason, details = self.outcome
        elapsed = time.monotonic() - self.started
        word = {'ok': 'ok', 'fail': 'FAIL', 'skip': 'skipped', 'xfail': 'expected failure'}[status]
        print(f'{test.id()} ... {word}{" (" + reason + ")" if reason and status == "skip" else ""} '
              f'{elapsed:.1f}s', file=self.log, flush=True)
        self.emit(test.id(), status, reason, details)
        self.outcome = None

    def set_bad(self, reason, details):
        prev = self.outcome
        self.outcome = ['fail', reason if prev[0] != 'fail' else prev[1], prev[2] + details]

    # --- unittest.TestResult callbacks ---

    def addSuccess(self, test):
        super().addSuccess(test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.set_bad(str(err[1]).split('\n')[0], self.err_text(err))

    def addError(self, test, err):
        super().addError(test, err)
        if isinstance(test, unittest.suite._ErrorHolder):
            self.fixture(test.description, 'fail', str(err[1]), self.err_text(err))
        else:
            self.set_bad(f'{err[0].__name__}: {str(err[1]).splitlines()[0] if str(err[1]) else ""}',
                         self.err_text(err))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if isinstance(test, unittest.suite._ErrorHolder):
            self.fixture(test.description, 'skip', reason, '')
        else:
            self.outcome = ['skip', reason, '']

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.outcome = ['xfail', '', self.err_text(err)]

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.set_bad('passed, but is marked expectedFailure', '')

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.set_bad(f'{subtest._subDescription()}: {str(err[1]).splitlines()[0] if str(err[1]) else ""}',
                         f'{subtest.id()}:\n{self.err_text(err)}')

    def fixture(self, description, status, reason, details):
        """A class or module fixture failed or skipped, outside any case: "setUpClass (mod.Class)"."""
        method, _, scope = description.partition(' ')
        scope = scope.strip('()')
        print(f'{description} ... {status} {reason}', file=self.log, flush=True)
        if method.startswith('setUp'):
            ids = self.by_class.get(scope) or self.by_module.get(scope) or [description]
            for i, name in enumerate(ids):
                self.emit(name, status, f'{method}: {reason}', details if i == 0 else '')
        else:
            self.emit(description, status, reason, details)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = os.path.abspath(argv[1])
    names = argv[2:]
    # TAP keeps the real stdout; everything else that writes to fd 1 writes to stderr.
    tap = os.fdopen(os.dup(1), 'w', buffering=1)
    os.dup2(2, 1)
    log = sys.stderr

    sys.path.insert(0, os.path.dirname(path))
    modname = os.path.splitext(os.path.basename(path))[0]
    try:
        module = importlib.import_module(modname)
        loader = unittest.TestLoader()
        if names:
            loader.testNamePatterns = [f'*{n}*' for n in names]
        suite = loader.loadTestsFromModule(module)
    except Exception:
        traceback.print_exc(file=log)
        print(f'not ok 1 - import {modname}\n1..1', file=tap)
        return 1
    tests = list(flatten(suite))
    result = TapResult(tap, log, tests)
    if not tests:
        result.emit(modname, 'fail', 'no test cases found')
    else:
        t0 = time.monotonic()
        suite.run(result)
        print(f'{modname}: {result.number} cases, {result.bad} failed, {time.monotonic() - t0:.1f}s',
              file=log)
    print(f'1..{result.number}', file=tap)
    return 1 if result.bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
