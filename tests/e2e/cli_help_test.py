"""`--help` and `-h` on every binary and every subcommand print usage on stdout and exit 0.

The commands are discovered from the binaries' own usage texts (qlorad-tool's command
table, qloractl's usage lines), so a new subcommand is covered without editing this test.
A bogus flag still fails, and a group's --help shows that group's lines only.
"""
import os
import re
import subprocess
import unittest

DAEMON = os.environ["QLORAD_DAEMON"]
TOOL = os.environ["QLORAD_TOOL"]
CTL = os.environ["QLORACTL"]


def run(*argv):
    # No daemon runs: a qloractl subcommand that tried to connect would fail, not print usage.
    env = dict(os.environ, QLORAD_ADDRESS="127.0.0.1:1")
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, env=env)


class HelpTest(unittest.TestCase):
    def assert_usage(self, *argv):
        for flag in ("--help", "-h"):
            with self.subTest(argv=argv, flag=flag):
                r = run(*argv, flag)
                self.assertEqual(r.returncode, 0, "%s %s: exit %d, stderr %r" % (argv, flag, r.returncode, r.stderr))
                self.assertTrue(r.stdout.startswith("usage:"), "%s %s: stdout %r" % (argv, flag, r.stdout[:200]))
                self.assertNotIn("unknown flag", r.stdout + r.stderr)

    def test_daemon(self):
        self.assert_usage(DAEMON)
        self.assert_usage(DAEMON, "hash-token")
        self.assertIn("--promotion-margin", run(DAEMON, "--help").stdout)

    def test_tool_and_every_command(self):
        self.assert_usage(TOOL)
        listing = run(TOOL, "--help").stdout
        commands = re.findall(r"^  (\S+) ", listing, re.M)
        self.assertGreaterEqual(len(commands), 10, listing)
        for command in commands:
            self.assert_usage(TOOL, command)

    def test_ctl_and_every_subcommand(self):
        self.assert_usage(CTL)
        usage = run(CTL, "--help").stdout
        groups = {}  # "  jobs list | get ID | watch ID" -> jobs: {list, get, watch}
        for group, rest in re.findall(r"^  ([a-z]+)\b(.*)$", usage, re.M):
            verbs = groups.setdefault(group, set())
            for alternative in rest.split("|"):
                first = alternative.split()[0] if alternative.split() else ""
                if re.fullmatch(r"[a-z][a-z-]*", first):
                    verbs.add(first)
        self.assertTrue({"datasets", "jobs", "adapters", "generate", "classify", "eval"} <= set(groups), groups)
        self.assertIn("check-promotion", groups["adapters"])
        for group, verbs in groups.items():
            self.assert_usage(CTL, group)
            for verb in verbs:
                self.assert_usage(CTL, group, verb)
        jobs = run(CTL, "jobs", "--help").stdout
        self.assertIn("jobs submit", jobs)
        self.assertNotIn("datasets upload", jobs)

    def test_bad_flags_still_fail(self):
        for argv in ([DAEMON, "--no-such-flag"], [TOOL, "train", "--no-such-flag"], [TOOL, "no-such-command"],
                     [CTL, "no-such-command"], [CTL]):
            with self.subTest(argv=argv):
                r = run(*argv)
                self.assertNotEqual(r.returncode, 0, argv)
                self.assertTrue(r.stderr.strip(), argv)

    def test_bad_flag_value_is_named(self):
        r = run(DAEMON, "--state-dir", "/nonexistent/state", "--model", "/nonexistent/model", "--adapter-factors", "fp8")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--adapter-factors: 'fp8' is not one of compute, bf16", r.stderr)
        self.assertIn("--adapter-factors compute|bf16", run(DAEMON, "--help").stdout)


if __name__ == "__main__":
    unittest.main()
