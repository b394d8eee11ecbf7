"""Authentication and authorization against the real daemon: no token, wrong token and
the wrong role for every service are refused with UNAUTHENTICATED / PERMISSION_DENIED;
per-token rate limits give RESOURCE_EXHAUSTED; SIGHUP reloads the tokens file; TLS and
mutual TLS work with certificates generated here (openssl), and plaintext or
certificate-less clients are refused."""

import hashlib
import os
import signal
import subprocess
import unittest

import grpc

import daemon_harness as h


def make_certs(directory):
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=qlorad-test-ca")
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, ext in (("server", ["-extfile", "server.ext"]), ("client", [])):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", name + ".pem",
            "-days", "2", *ext)
    return {n: os.path.join(directory, n) for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.tempdir("qlorad-auth-")
        cls.model = h.make_model(os.path.join(cls.work, "model"))
        cls.stubs = h.python_stubs(os.path.join(cls.work, "stubs"))
        cls.d = h.Daemon(os.path.join(cls.work), cls.model, extra_args=["--rate-limit", "20"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def call(self, service, method, request, token):
        pb, grpc_mod = self.stubs[service]
        with grpc.insecure_channel(self.d.address) as channel:
            stub = getattr(grpc_mod, service.capitalize() + "Stub")(channel)
            metadata = [("authorization", "Bearer " + token)] if token else []
            try:
                getattr(stub, method)(request, metadata=metadata, timeout=30)
                return grpc.StatusCode.OK
            except grpc.RpcError as e:
                return e.code()

    def requests(self):
        ds, jobs, ad, inf, ev, rv = (self.stubs[n][0]
                                     for n in ("datasets", "jobs", "adapters", "inference", "evaluations", "reviews"))
        # (service, method, request, roles allowed); reads are open to every role.
        return [
            ("datasets", "DeleteDataset", ds.DeleteDatasetRequest(dataset_id="nope"), {"admin", "trainer"}),
            ("datasets", "ListDatasets", ds.ListDatasetsRequest(), set(h.ROLES)),
            ("jobs", "CreateJob", jobs.CreateJobRequest(dataset_id="nope", adapter_name="x"), {"admin", "trainer"}),
            ("jobs", "CancelJob", jobs.CancelJobRequest(job_id="nope"), {"admin", "trainer"}),
            ("jobs", "ListJobs", jobs.ListJobsRequest(), set(h.ROLES)),
            ("adapters", "PromoteAdapter", ad.PromoteAdapterRequest(adapter="a@1", alias="x"), {"admin", "deployer"}),
            ("adapters", "ApproveAdapter", ad.DecisionRequest(adapter="a@1"), {"admin", "deployer"}),
            ("adapters", "LoadAdapter", ad.LoadAdapterRequest(adapter="a@1"), {"admin", "deployer"}),
            ("adapters", "ListAdapters", ad.ListAdaptersRequest(), set(h.ROLES)),
            ("inference", "Generate", inf.GenerateRequest(prompt="hi", max_new_tokens=1), {"admin", "inference"}),
            ("inference", "Classify", inf.ClassifyRequest(text="hi", labels=["a", "b"]), {"admin", "inference"}),
            ("evaluations", "CreateEvaluation", ev.CreateEvaluationRequest(dataset_id="nope"), {"admin", "trainer"}),
            ("evaluations", "GetEvaluation", ev.GetEvaluationRequest(evaluation_id="nope"), set(h.ROLES)),
            ("reviews", "ListReviewQueue", rv.ListReviewQueueRequest(), {"admin", "deployer", "reviewer"}),
            ("reviews", "SaveJudgement", rv.SaveJudgementRequest(evaluation_id="nope"), {"admin", "deployer", "reviewer"}),
            ("reviews", "SubmitReview", rv.SubmitReviewRequest(evaluation_id="nope"), {"admin", "deployer", "reviewer"}),
            ("reviews", "AuditTrail", rv.AuditTrailRequest(subject="adapter:nope@1"), set(h.ROLES)),
        ]

    def test_no_token_and_wrong_token_are_unauthenticated(self):
        for service, method, request, _ in self.requests():
            self.assertEqual(self.call(service, method, request, None), grpc.StatusCode.UNAUTHENTICATED, method)
            self.assertEqual(self.call(service, method, request, "not-a-token"), grpc.StatusCode.UNAUTHENTICATED, method)

    def test_every_role_on_every_service(self):
        for service, method, request, allowed in self.requests():
            for role in h.ROLES:
                code = self.call(service, method, request, self.d.tokens[role])
                if role in allowed:
                    self.assertNotIn(code, (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED),
                                     "%s as %s" % (method, role))
                else:
                    self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED, "%s as %s" % (method, role))

    def test_rate_limit_per_token(self):
        ds = self.stubs["datasets"][0]
        codes = [self.call("datasets", "ListDatasets", ds.ListDatasetsRequest(), self.d.tokens["viewer"]) for _ in range(60)]
        self.assertIn(grpc.StatusCode.RESOURCE_EXHAUSTED, codes)
        self.assertEqual(codes[0], grpc.StatusCode.OK)
        # Another token has its own bucket.
        self.assertEqual(self.call("datasets", "ListDatasets", ds.ListDatasetsRequest(), self.d.tokens["deployer"]),
                         grpc.StatusCode.OK)

    def test_sighup_reloads_tokens(self):
        ds = self.stubs["datasets"][0]
        self.assertEqual(self.call("datasets", "ListDatasets", ds.ListDatasetsRequest(), "late-token"),
                         grpc.StatusCode.UNAUTHENTICATED)
        with open(self.d.tokens_file, "a") as f:
            f.write("late viewer sha256:%s\n" % hashlib.sha256(b"late-token").hexdigest())
        self.d.proc.send_signal(signal.SIGHUP)
        for _ in range(50):
            if self.call("datasets", "ListDatasets", ds.ListDatasetsRequest(), "late-token") == grpc.StatusCode.OK:
                break
            import time
            time.sleep(0.1)
        self.assertEqual(self.call("datasets", "ListDatasets", ds.ListDatasetsRequest(), "late-token"), grpc.StatusCode.OK)

    def tls_daemon(self, mutual):
        certs = make_certs(h.tempdir("qlorad-certs-"))
        args = ["--tls-cert", certs["server.pem"], "--tls-key", certs["server.key"]]
        if mutual:
            args += ["--tls-client-ca", certs["ca.pem"]]
        workdir = h.tempdir("qlorad-tls-")
        d = h.Daemon(workdir, self.model, extra_args=args).start()
        self.addCleanup(d.stop)
        return d, certs

    def test_tls_and_mutual_tls(self):
        for mutual in (False, True):
            d, certs = self.tls_daemon(mutual)
            ok = d.ctl("--tls-ca", certs["ca.pem"], *(["--tls-cert", certs["client.pem"], "--tls-key", certs["client.key"]]
                                                     if mutual else []), "datasets", "list", check=False)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            plaintext = d.ctl("--timeout", "5", "datasets", "list", check=False)
            self.assertIn("UNAVAILABLE", plaintext.stderr)
            if mutual:
                no_cert = d.ctl("--timeout", "5", "--tls-ca", certs["ca.pem"], "datasets", "list", check=False)
                self.assertNotEqual(no_cert.returncode, 0)
                self.assertIn("UNAVAILABLE", no_cert.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
