"""The review console (--console-address) in headless Chromium against the real daemon.

Sets up over gRPC/qloractl what a review needs (dataset, adapter, an adapter evaluation on
10 hold-out items, a blind review sample), then runs console_browser.js (npm puppeteer-core
driving Debian's chromium): two reviewers rate the 10 items with the keyboard (reload after 5,
resume at 6), submit; kappa and the win rate show on the adapter page; a reviewer's approve is
403 in the page; the deployer approves with the risk-class fields. Then checks here: the
reviewer's approve over gRPC is PERMISSION_DENIED, the audit trail (console API) holds both
submits and the approval with its evidence, the HTTP API refuses bad tokens, and the three
screenshots are not blank (pixel variance with PIL, not file size).

  console_browser_test.py [--artifacts DIR]   (screenshots; default build/test-artifacts/console)
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import unittest
import urllib.error
import urllib.request

import grpc
from PIL import Image, ImageStat

import daemon_harness as h

ITEMS = 10
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "console_browser.js")
ARTIFACTS = os.path.join("build", "test-artifacts", "console")
REVIEWERS = {"rev-ana": "ana-review-secret", "rev-ben": "ben-review-secret"}


def pixel_stddev(path):
    """Mean over RGB channels of the pixel standard deviation (0 for a one-colour image)."""
    with Image.open(path) as img:
        return sum(ImageStat.Stat(img.convert("RGB")).stddev) / 3


class ConsoleBrowserTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.tempdir("qlorad-console-")
        cls.model = h.make_model(os.path.join(cls.work, "model"))
        adapter_dir = os.path.join(cls.work, "adapter")
        subprocess.run([h.TOOL, "make-adapter", "--model", cls.model, "--out", adapter_dir, "--rank", "8", "--seed", "5",
                        "--std", "0.3"], check=True, stdout=subprocess.DEVNULL)
        data = h.write_sentiment(os.path.join(cls.work, "imdb.jsonl"), limit=200)
        cls.d = h.Daemon(cls.work, cls.model, extra_args=["--console-address", "127.0.0.1:0", "--import-root", cls.work])
        with open(cls.d.tokens_file, "a") as f:
            for name, token in REVIEWERS.items():
                f.write("%s reviewer sha256:%s\n" % (name, hashlib.sha256(token.encode()).hexdigest()))
        cls.d.start()
        with open(cls.d.log_path) as f:
            log = f.read()
        marker = "review console on "
        assert marker in log, "the daemon did not report its console address:\n" + log
        cls.url = log.split(marker, 1)[1].split()[0].rstrip("/")
        d = cls.d
        d.ctl("datasets", "upload", data, "--id", "imdb", "--format", "classification", role="trainer")
        cls.adapter_id = d.ctl_json("adapters", "import", "sentiment", adapter_dir, role="deployer")["adapter_id"]
        evaluation = d.ctl_json("eval", "--dataset", "imdb", "--adapter", cls.adapter_id, "--max-examples", str(ITEMS),
                                role="trainer")
        cls.evaluation_id = evaluation["evaluation_id"]
        out = os.path.join(cls.work, "review")
        os.makedirs(out)
        d.ctl("eval", "review-export", cls.evaluation_id, "--out", out, "--size", "50", "--blind", role="trainer")
        with open(os.path.join(out, "review.csv")) as f:
            assert len(f.read().strip().splitlines()) == ITEMS + 1, "the sample holds the 10 evaluated items"
        cls.s = h.python_stubs(os.path.join(cls.work, "stubs"))
        cls.channel = grpc.insecure_channel(d.address)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.d.stop()

    def api(self, path, token, method="GET", body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                return res.status, json.loads(res.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def test_review_and_decision_in_the_browser(self):
        env = dict(os.environ, QLORAD_CONSOLE_URL=self.url, QLORAD_NPM=h.NPM, QLORAD_EVALUATION_ID=self.evaluation_id,
                   QLORAD_ADAPTER_ID=self.adapter_id, QLORAD_ARTIFACTS=os.path.abspath(ARTIFACTS),
                   QLORAD_ITEMS=str(ITEMS), QLORAD_REVIEWER1_TOKEN=REVIEWERS["rev-ana"],
                   QLORAD_REVIEWER2_TOKEN=REVIEWERS["rev-ben"], QLORAD_DEPLOYER_TOKEN=self.d.tokens["deployer"])
        result = subprocess.run(["node", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr[-6000:])
        self.assertEqual(result.returncode, 0, "browser checks failed:\n" + result.stderr[-4000:])
        report = json.loads(result.stdout.strip().splitlines()[-1])
        print("kappa %s | win rate %s | reviewer approve: %s" % (report["kappa"], report["win_rate"],
                                                                 report["reviewer_approve"]))
        self.assertGreaterEqual(report["heatmaps"], 2, "confusion-matrix heatmaps of baseline and adapter")
        self.assertIn("sentiment:prod", report["gate"])  # the CI gate's verdict, as CheckPromotion gives it
        for name in ("queue", "item", "adapter"):
            path = report["screenshots"][name]
            stddev = pixel_stddev(path)
            print("screenshot %s: %s, pixel stddev %.1f" % (name, path, stddev))
            self.assertGreater(stddev, 10.0, "screenshot %s looks blank" % name)
        self.check_reviewer_cannot_approve_over_grpc()
        self.check_report_link()
        self.check_audit_trail(report)
        self.check_gate_verdict()

    def check_reviewer_cannot_approve_over_grpc(self):
        ad = self.s["adapters"]
        stub = ad[1].AdaptersStub(self.channel)
        with self.assertRaises(grpc.RpcError) as refused:
            stub.ApproveAdapter(ad[0].DecisionRequest(adapter=self.adapter_id, risk_class="minimal"),
                                metadata=[("authorization", "Bearer " + REVIEWERS["rev-ana"])], timeout=30)
        self.assertEqual(refused.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        status, body = self.api("/api/adapters/%s/approve" % self.adapter_id, REVIEWERS["rev-ana"], "POST", {})
        self.assertEqual(status, 403, body)

    def check_report_link(self):
        """The evaluation's HTML report the adapter page opens (fetched with the token)."""
        req = urllib.request.Request("%s/api/evaluations/%s/report" % (self.url, self.evaluation_id),
                                     headers={"Authorization": "Bearer " + REVIEWERS["rev-ana"]})
        with urllib.request.urlopen(req, timeout=60) as res:
            self.assertTrue(res.headers["Content-Type"].startswith("text/html"))
            self.assertIn(self.evaluation_id, res.read().decode())

    def check_audit_trail(self, report):
        token = self.d.tokens["deployer"]
        entries = []
        for subject in ("adapter:" + self.adapter_id, "evaluation:" + self.evaluation_id):
            status, body = self.api("/api/audit?subject=" + subject, token)
            self.assertEqual(status, 200, body)
            entries += body["entries"]
        text = json.dumps(entries)
        submits = [e for e in entries if e["action"] == "review.submit"]
        self.assertEqual(sorted(e["actor"] for e in submits), sorted(REVIEWERS), text[-3000:])
        approvals = [e for e in entries if e["action"] == "approve"]
        self.assertEqual(len(approvals), 1, text[-3000:])
        details = approvals[0]["details"]
        details = json.loads(details) if isinstance(details, str) else details
        self.assertEqual(approvals[0]["actor"], "deployer-user")
        self.assertIn(self.evaluation_id, json.dumps(details))
        self.assertIn("DOC-42", json.dumps(details))
        self.assertIn("cohen_kappa", json.dumps(details), "the review summary shown is in the evidence")
        # The page's audit table showed the same steps.
        for action in ("review.submit", "approve"):
            self.assertIn(action, report["audit_actions"])

    def check_gate_verdict(self):
        """With the approved version serving sentiment:prod, the adapter page's gate verdict for
        a second version evaluated on the same hold-out names the metric and both values."""
        d = self.d
        d.ctl("adapters", "promote", self.adapter_id, "sentiment:prod", role="deployer")
        adapter_dir = os.path.join(self.work, "adapter2")
        subprocess.run([h.TOOL, "make-adapter", "--model", self.model, "--out", adapter_dir, "--rank", "8", "--seed", "6",
                        "--std", "0.3"], check=True, stdout=subprocess.DEVNULL)
        second = d.ctl_json("adapters", "import", "sentiment", adapter_dir, role="deployer")["adapter_id"]
        d.ctl_json("eval", "--dataset", "imdb", "--adapter", second, "--max-examples", str(ITEMS), role="trainer")
        status, body = self.api("/api/adapters/%s?alias=sentiment:prod" % second, REVIEWERS["rev-ana"])
        self.assertEqual(status, 200, body)
        gate = body["gate"]
        print("gate verdict on the adapter page: " + gate["message"])
        self.assertTrue(gate["applies"], gate)
        self.assertEqual(gate["serving_id"], self.adapter_id)
        self.assertEqual(gate["metric"], "macro_f1")
        self.assertLessEqual(gate["delta_low"], gate["delta_high"])

    def test_api_refuses_without_a_valid_token(self):
        self.assertEqual(self.api("/api/queue", "wrong-token")[0], 401)
        self.assertEqual(self.api("/api/queue", self.d.tokens["inference"])[0], 403)  # cannot review
        status, body = self.api("/api/reviews/%s/items/nope" % self.evaluation_id, REVIEWERS["rev-ben"], "PUT",
                                {"rating_a": "five"})
        self.assertEqual(status, 400)
        self.assertIn("rating_a", body["error"]["message"])
        with urllib.request.urlopen(self.url + "/", timeout=30) as res:
            page = res.read().decode()
            self.assertIn("script-src 'self'", res.headers["Content-Security-Policy"])
        self.assertIn("qlorad review console", page)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifacts", default=ARTIFACTS)
    args, rest = parser.parse_known_args()
    ARTIFACTS = args.artifacts
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
