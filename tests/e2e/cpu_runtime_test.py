"""The daemon quiets idle OpenMP/OpenBLAS threads by re-executing itself once
(core/util/cpu_runtime.h): started without the settings, the running process (same pid)
has OMP_WAIT_POLICY=passive and OPENBLAS_THREAD_TIMEOUT=4 in its environment; a value the
operator set is kept; with both set it does not re-execute; QLORAD_CPU_RUNTIME=keep leaves the
environment alone. Read from
/proc/<pid>/environ of the real daemon while it serves; its start-up log names the same values."""
import os
import re
import unittest

import daemon_harness as h

SETTINGS = ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "QLORAD_CPU_RUNTIME")


def environ_of(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        pairs = [item.decode(errors="replace").split("=", 1) for item in f.read().split(b"\0") if b"=" in item]
    return dict(pairs)


class CpuRuntimeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.tempdir("cpu-runtime")
        cls.model = h.make_model(os.path.join(cls.work, "model"))

    def run_daemon(self, name, **env):
        base = {k: v for k, v in os.environ.items() if k not in SETTINGS}
        workdir = os.path.join(self.work, name)
        os.makedirs(workdir)
        daemon = h.Daemon(workdir, self.model)
        daemon.env = dict(base, **env)
        daemon.start()
        try:
            env = environ_of(daemon.proc.pid)  # exec keeps the pid Popen started
        finally:
            code = daemon.stop()
        self.assertEqual(code, 0)
        with open(daemon.log_path) as f:
            logged = re.search(r"qlorad: cpu runtime: OMP_WAIT_POLICY=(\S+) OPENBLAS_THREAD_TIMEOUT=(\S+)", f.read())
        self.assertIsNotNone(logged, "no cpu runtime line in the daemon's log")
        self.assertEqual(logged.groups(), (env.get("OMP_WAIT_POLICY", "(unset)"), env.get("OPENBLAS_THREAD_TIMEOUT", "(unset)")))
        return env

    def test_defaults_applied_by_reexecution(self):
        env = self.run_daemon("defaults")
        self.assertEqual(env.get("OMP_WAIT_POLICY"), "passive")
        self.assertEqual(env.get("OPENBLAS_THREAD_TIMEOUT"), "4")
        self.assertEqual(env.get("QLORAD_CPU_RUNTIME"), "applied")

    def test_operator_value_kept(self):
        env = self.run_daemon("operator", OMP_WAIT_POLICY="active")
        self.assertEqual(env.get("OMP_WAIT_POLICY"), "active")
        self.assertEqual(env.get("OPENBLAS_THREAD_TIMEOUT"), "4")

    def test_both_set_no_reexecution_needed(self):
        env = self.run_daemon("both-set", OMP_WAIT_POLICY="passive", OPENBLAS_THREAD_TIMEOUT="8")
        self.assertEqual(env.get("OPENBLAS_THREAD_TIMEOUT"), "8")
        # /proc/<pid>/environ is the environment of the last exec: no marker, no re-execution.
        self.assertNotIn("QLORAD_CPU_RUNTIME", env)

    def test_keep_opts_out(self):
        env = self.run_daemon("keep", QLORAD_CPU_RUNTIME="keep")
        self.assertNotIn("OMP_WAIT_POLICY", env)
        self.assertNotIn("OPENBLAS_THREAD_TIMEOUT", env)


if __name__ == "__main__":
    unittest.main()
