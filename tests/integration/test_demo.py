#!/usr/bin/python3
# Runs the README's first command's demo (tests/integration/demo.py) and checks that it tells every step.
"""The demo as `tools/dev demo` runs it (a child process, the build under test): exit status 0, every
step of demo.STEPS printed as its own numbered line in order, nothing on stderr, no error or
warning words anywhere, and no process left that it started. And it fails loudly: with a wrong PIN
typed at the PAM prompt (the card really refuses it) it stops at that step with "FAILED at step
4", exit status 1, the module's own words, none of the later steps, and still stops everything."""
import os
import re
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import demo  # noqa: E402

# Runs demo.main() with the PIN typed at the PAM prompt replaced by a wrong one (the card keeps its PIN).
WRONG_PIN_DRIVER = f'''
import sys
sys.path.insert(0, {HERE!r})
import demo
def wrong_pin(self):
    return self.run(['pamtester', '-v', demo.PAM_SERVICE, demo.COUNTER, 'authenticate', 'acct_mgmt'],
                    env=self.pam_env(), stdin='000000\\n', ok=False)
demo.Demo.pam_login = wrong_pin
sys.exit(demo.main())
'''


def run_demo(args):
    env = dict(os.environ)
    env.pop('MAMORI_KEEP_TMP', None)
    env.pop('MAMORI_BENCH_VERBOSE', None)
    return subprocess.run([bench.PYTHON] + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=300, check=False)


def work_dir(stdout):
    m = re.search(r'^work directory (/\S+)', stdout, re.M)
    return m.group(1) if m else None


class DemoTest(unittest.TestCase):
    def assertNothingLeft(self, tmp):
        self.assertIsNotNone(tmp, 'the demo does not name its work directory')
        self.assertFalse(os.path.exists(tmp), f'{tmp} is still there')
        self.assertEqual(bench.leftover_processes(names=(tmp,)), [], 'processes the demo started are running')

    def test_every_step_is_told_on_one_line(self):
        p = run_demo([os.path.join(HERE, 'demo.py')])
        print(p.stdout, file=sys.stderr)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stderr, '', 'the happy path prints nothing on stderr')
        lines = p.stdout.splitlines()
        at = 0
        for i, (title, _) in enumerate(demo.STEPS, 1):
            prefix = f'{i}. {title}: '
            found = [n for n, line in enumerate(lines) if line.startswith(prefix)]
            self.assertEqual(len(found), 1, f'step line "{prefix}…" appears {len(found)} times:\n{p.stdout}')
            self.assertGreater(found[0], at - 1, f'step {i} out of order')
            self.assertGreater(len(lines[found[0]]), len(prefix) + 10, f'step {i} says nothing')
            at = found[0]
        self.assertRegex(lines[-1], r'^demo finished in \d+\.\d s; every process it started is stopped$')
        for line in lines:
            self.assertNotRegex(line, r'(?i)\b(error|warning|failed|traceback|sanitizer)\b', line)
        self.assertNothingLeft(work_dir(p.stdout))

    def test_a_step_that_fails_stops_the_demo_loudly(self):
        p = run_demo(['-c', WRONG_PIN_DRIVER])
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn('FAILED at step 4 (login through PAM with the PIN)', p.stderr)
        self.assertIn('PIN wrong, 2 tries left', p.stderr)  # pamtester's own output, in the failure
        self.assertIn('--- last lines of mamorid', p.stderr)
        self.assertRegex(p.stdout, r'(?m)^3\. operator card issued: ')
        self.assertNotRegex(p.stdout, r'(?m)^[4-9]\. ')
        self.assertNotIn('demo finished', p.stdout)
        self.assertNothingLeft(work_dir(p.stdout))


if __name__ == '__main__':
    unittest.main(verbosity=2)
