"""Security review (issue 21) against the real daemon, one test per finding:

* names that become paths (dataset ids, adapter names, upload file names, job and
  evaluation ids; gRPC, the console's HTTP API and review import) are refused with
  INVALID_ARGUMENT naming the field; nothing stored before changes (file digests and a
  logical dump of the SQLite store) and nothing appears outside the state directory;
* an unauthenticated call to every service behaves as README documents: qlorad.v1.* and
  server reflection UNAUTHENTICATED (reflection reveals nothing), grpc.health.v1.Health
  and HTTP /health answer, /metrics answers, the OpenAI API and the console 401;
* /metrics and health never show a prompt or a token;
* --no-auth refuses a listen address that is not loopback (gRPC, metrics, OpenAI, console);
* TLS: TLS 1.1 and non-ECDHE/non-AEAD TLS 1.2 cipher suites are refused on the gRPC and
  the HTTP listeners, TLS 1.2 with ECDHE-AES-GCM is accepted (openssl s_client)."""

import hashlib
import json
import os
import sqlite3
import subprocess
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid

import grpc

import daemon_harness as h
from auth_test import make_certs

MARK = "pwned-" + uuid.uuid4().hex[:12]  # a name no traversal may ever create anywhere
BAD_NAMES = ["", ".", "..", "../" + MARK, "../../" + MARK, "a/b", "/tmp/" + MARK, "..\\" + MARK, "x\0y", ".hidden",
             "a" * 300, "with space", MARK + "/..", "%2e%2e%2f" + MARK]
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def tree_files(root, skip_sqlite_side_files=True):
    """{relative path: sha256} of every regular file under `root` (symlinks as their target)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if skip_sqlite_side_files and name.endswith(SQLITE_SIDE_FILES):
                continue
            rel = os.path.relpath(path, root)
            if name == "qlorad.db":
                out[rel] = "sqlite"  # compared logically (a checkpoint may rewrite pages)
                continue
            with open(path, "rb") as f:
                out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


def db_dump(path):
    """Every row of the daemon's store, read-only (WAL readers do not block the daemon)."""
    with sqlite3.connect("file:%s?mode=ro" % path, uri=True) as db:
        return "\n".join(db.iterdump())


def find_mark(*roots):
    hits = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            hits += [os.path.join(dirpath, n) for n in dirnames + filenames if MARK in n]
    return hits


def identity(x):
    return x


class SecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.tempdir("qlorad-security-")
        cls.model = h.make_model(os.path.join(cls.work, "model"))
        cls.stubs = h.python_stubs(os.path.join(cls.work, "stubs"))
        cls.openai_port, cls.console_port = h.free_port(), h.free_port()
        # The daemon's own directory holds its tokens file, logs and state dir: everything
        # beside the state dir is compared too.
        workdir = os.path.join(cls.work, "daemon")
        os.makedirs(workdir)
        cls.d = h.Daemon(workdir, cls.model, extra_args=["--openai-address", "127.0.0.1:%d" % cls.openai_port,
                                                         "--console-address", "127.0.0.1:%d" % cls.console_port]).start()
        data = h.write_sentiment(os.path.join(cls.work, "imdb.jsonl"), limit=240)
        cls.d.ctl("datasets", "upload", data, "--id", "imdb", "--format", "classification", "--allow-small", role="trainer")
        cls.evaluation_id = cls.d.ctl_json("eval", "--dataset", "imdb", "--max-examples", "20", role="trainer")["evaluation_id"]

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    # -- helpers ---------------------------------------------------------------------------

    def stub(self, service):
        pb, grpc_mod = self.stubs[service]
        channel = grpc.insecure_channel(self.d.address)
        self.addCleanup(channel.close)
        return pb, getattr(grpc_mod, service.capitalize() + "Stub")(channel)

    def http(self, port, path, token=None, method="GET", body=None):
        request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method, data=body)
        if token:
            request.add_header("Authorization", "Bearer " + token)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def snapshot(self):
        state = self.d.state_dir
        outside = (sorted(os.listdir(self.work)), sorted(os.listdir(self.d.workdir)))  # the state dir's surroundings
        return tree_files(state), db_dump(os.path.join(state, "qlorad.db")), outside

    def assert_invalid(self, call, field, what):
        with self.assertRaises(grpc.RpcError, msg=what) as caught:
            call()
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT,
                         "%s: %s" % (what, caught.exception.details()))
        self.assertTrue(caught.exception.details().startswith(field + ": ") or (field + ": ") in caught.exception.details(),
                        "%s: '%s' does not name %s" % (what, caught.exception.details(), field))

    # -- 1. names that become paths ---------------------------------------------------------

    def test_bad_names_are_refused_and_nothing_changes(self):
        before = self.snapshot()
        md = self.d.metadata("admin")
        ds, datasets = self.stub("datasets")
        jobs_pb, jobs = self.stub("jobs")
        ad, adapters = self.stub("adapters")
        ev, evaluations = self.stub("evaluations")
        rv, reviews = self.stub("reviews")
        sha = "0" * 64
        files = [ad.UploadAdapterFile(name="adapter_config.json", size=10, sha256=sha),
                 ad.UploadAdapterFile(name="adapter_model.safetensors", size=10, sha256=sha)]
        for bad in BAD_NAMES:
            label = repr(bad)
            header = ds.UploadDatasetRequest(header=ds.UploadDatasetHeader(dataset_id=bad, format="classification"))
            chunk = ds.UploadDatasetRequest(chunk=b'{"text": "x", "label": "positive"}\n' * 50)
            self.assert_invalid(lambda: datasets.UploadDataset(iter([header, chunk]), metadata=md, timeout=60),
                                "dataset_id", "UploadDataset " + label)
            self.assert_invalid(lambda: datasets.GetDataset(ds.GetDatasetRequest(dataset_id=bad), metadata=md, timeout=30),
                                "dataset_id", "GetDataset " + label)
            self.assert_invalid(lambda: datasets.DeleteDataset(ds.DeleteDatasetRequest(dataset_id=bad), metadata=md, timeout=30),
                                "dataset_id", "DeleteDataset " + label)
            self.assert_invalid(lambda: jobs.CreateJob(jobs_pb.CreateJobRequest(dataset_id="imdb", adapter_name=bad),
                                                       metadata=md, timeout=30), "adapter_name", "CreateJob name " + label)
            self.assert_invalid(lambda: jobs.CreateJob(jobs_pb.CreateJobRequest(dataset_id=bad, adapter_name="ok"),
                                                       metadata=md, timeout=30), "dataset_id", "CreateJob dataset " + label)
            self.assert_invalid(lambda: jobs.GetJob(jobs_pb.GetJobRequest(job_id=bad), metadata=md, timeout=30),
                                "job_id", "GetJob " + label)
            self.assert_invalid(lambda: jobs.CancelJob(jobs_pb.CancelJobRequest(job_id=bad), metadata=md, timeout=30),
                                "job_id", "CancelJob " + label)
            self.assert_invalid(lambda: list(jobs.WatchJob(jobs_pb.WatchJobRequest(job_id=bad), metadata=md, timeout=30)),
                                "job_id", "WatchJob " + label)
            self.assert_invalid(lambda: adapters.ImportAdapter(ad.ImportAdapterRequest(name=bad, path="x"), metadata=md,
                                                               timeout=30), "name", "ImportAdapter " + label)
            upload = ad.UploadAdapterRequest(header=ad.UploadAdapterHeader(name=bad, files=files))
            self.assert_invalid(lambda: adapters.UploadAdapter(iter([upload]), metadata=md, timeout=30),
                                "header.name", "UploadAdapter name " + label)
            bad_file = [ad.UploadAdapterFile(name=bad, size=10, sha256=sha)] + files
            upload = ad.UploadAdapterRequest(header=ad.UploadAdapterHeader(name="ok", files=bad_file))
            self.assert_invalid(lambda: adapters.UploadAdapter(iter([upload]), metadata=md, timeout=30),
                                "header.files[0].name", "UploadAdapter file " + label)
            self.assert_invalid(lambda: evaluations.GetEvaluation(ev.GetEvaluationRequest(evaluation_id=bad), metadata=md,
                                                                  timeout=30), "evaluation_id", "GetEvaluation " + label)
            self.assert_invalid(lambda: evaluations.ExportReviewSample(ev.ExportReviewSampleRequest(evaluation_id=bad),
                                                                       metadata=md, timeout=30),
                                "evaluation_id", "ExportReviewSample " + label)
            review_file = ev.ReviewerFile(reviewer="alice", format="csv", content="item_id,rating_a\n")
            self.assert_invalid(lambda: evaluations.ImportReviews(ev.ImportReviewsRequest(evaluation_id=bad, files=[review_file]),
                                                                  metadata=md, timeout=30),
                                "evaluation_id", "ImportReviews " + label)
            self.assert_invalid(lambda: reviews.GetReviewSession(rv.GetReviewSessionRequest(evaluation_id=bad), metadata=md,
                                                                 timeout=30), "evaluation_id", "GetReviewSession " + label)
            self.assert_invalid(lambda: reviews.SaveJudgement(rv.SaveJudgementRequest(evaluation_id=bad, item_id="1",
                                                                                      rating_a=3, rating_b=3, preference="tie"),
                                                              metadata=md, timeout=30),
                                "evaluation_id", "SaveJudgement " + label)
        # The console's HTTP API: ids from the URL path (a '/' cannot reach the handler).
        for bad in ["..", ".", "..%5C" + MARK, "x%00y", ".hidden", "%2E%2E"]:
            code, body = self.http(self.console_port, "/api/evaluations/%s/report" % bad, token=self.d.tokens["admin"])
            self.assertEqual(code, 400, "console report %r: %s" % (bad, body))
            self.assertIn("evaluation_id", body)
            code, body = self.http(self.console_port, "/api/reviews/%s" % bad, token=self.d.tokens["reviewer"])
            self.assertEqual(code, 400, "console review %r: %s" % (bad, body))
        after = self.snapshot()
        self.assertEqual(before[0], after[0], "files under the state dir changed")
        self.assertEqual(before[1], after[1], "the store's rows changed")
        self.assertEqual(before[2], after[2], "something appeared beside the state dir")
        self.assertEqual(find_mark(self.work), [])
        self.assertEqual([n for n in os.listdir("/tmp") if MARK in n], [])
        # The stored dataset and evaluation are still served.
        self.assertEqual(datasets.GetDataset(ds.GetDatasetRequest(dataset_id="imdb"), metadata=md).dataset_id, "imdb")
        got = evaluations.GetEvaluation(ev.GetEvaluationRequest(evaluation_id=self.evaluation_id), metadata=md)
        self.assertEqual(got.evaluation_id, self.evaluation_id)

    # -- 3. authentication on every service -------------------------------------------------

    def raw(self, path, kind, request, token=None):
        channel = grpc.insecure_channel(self.d.address)
        self.addCleanup(channel.close)
        metadata = [("authorization", "Bearer " + token)] if token else []
        if kind == "unary":
            return [channel.unary_unary(path, request_serializer=identity, response_deserializer=identity)(
                request, metadata=metadata, timeout=30)]
        responses = []
        try:
            for r in channel.stream_stream(path, request_serializer=identity, response_deserializer=identity)(
                    iter(request), metadata=metadata, timeout=30):
                responses.append(r)
        except grpc.RpcError as e:
            e.responses = responses
            raise
        return responses

    def test_unauthenticated_calls_behave_as_documented(self):
        reads = {
            "datasets": ("ListDatasets", lambda pb: pb.ListDatasetsRequest()),
            "jobs": ("ListJobs", lambda pb: pb.ListJobsRequest()),
            "adapters": ("ListAdapters", lambda pb: pb.ListAdaptersRequest()),
            "inference": ("Generate", lambda pb: pb.GenerateRequest(prompt="hi", max_new_tokens=1)),
            "evaluations": ("GetEvaluation", lambda pb: pb.GetEvaluationRequest(evaluation_id=self.evaluation_id)),
            "reviews": ("ListReviewQueue", lambda pb: pb.ListReviewQueueRequest()),
        }
        for service, (method, make) in reads.items():
            pb, stub = self.stub(service)
            for token in (None, "not-a-token"):
                md = [("authorization", "Bearer " + token)] if token else []
                with self.assertRaises(grpc.RpcError) as caught:
                    getattr(stub, method)(make(pb), metadata=md, timeout=30)
                self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED, "%s.%s" % (service, method))
        # Health is open (probes carry no token) and says only SERVING (field 1 = 1).
        health = self.raw("/grpc.health.v1.Health/Check", "unary", b"")
        self.assertEqual(health, [b"\x08\x01"])
        # Reflection: list_services (field 7) and file_containing_symbol (field 4).
        path = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        symbol = b"qlorad.v1.Datasets"
        requests = [b"\x3a\x01*", b"\x22" + bytes([len(symbol)]) + symbol]
        for token in (None, "not-a-token"):
            with self.assertRaises(grpc.RpcError) as caught:
                self.raw(path, "stream", requests, token=token)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED, caught.exception.details())
            leaked = b"".join(caught.exception.responses)
            self.assertNotIn(b"qlorad", leaked)
            self.assertNotIn(b"grpc.", leaked)
        allowed = b"".join(self.raw(path, "stream", requests, token=self.d.tokens["viewer"]))
        self.assertIn(b"qlorad.v1.Datasets", allowed)
        self.assertIn(b"qlorad/v1/datasets.proto", allowed)
        # HTTP: OpenAI and the console need a token; /health and /metrics do not.
        self.assertEqual(self.http(self.openai_port, "/v1/models")[0], 401)
        self.assertEqual(self.http(self.openai_port, "/v1/models", token="not-a-token")[0], 401)
        self.assertEqual(self.http(self.openai_port, "/health")[0], 200)
        self.assertEqual(self.http(self.console_port, "/api/queue")[0], 401)
        self.assertEqual(self.http(self.d.metrics_port, "/metrics")[0], 200)

    # -- 4. no prompts or tokens in /metrics or health --------------------------------------

    def test_metrics_and_health_never_show_prompts_or_tokens(self):
        secret = "s3cr3t-prompt-" + uuid.uuid4().hex
        bogus_token = "bogus-token-" + uuid.uuid4().hex
        inf, stub = self.stub("inference")
        stub.Generate(inf.GenerateRequest(prompt="tell me " + secret, max_new_tokens=2),
                      metadata=self.d.metadata("inference"), timeout=120)
        with self.assertRaises(grpc.RpcError):
            stub.Generate(inf.GenerateRequest(prompt=secret, max_new_tokens=1),
                          metadata=[("authorization", "Bearer " + bogus_token)], timeout=30)
        body = json.dumps({"model": "model", "prompt": "again " + secret, "max_tokens": 2}).encode()
        self.http(self.openai_port, "/v1/completions", token=self.d.tokens["inference"], method="POST", body=body)
        self.http(self.openai_port, "/v1/completions", token=bogus_token, method="POST", body=body)
        scraped = [self.http(self.d.metrics_port, "/metrics")[1], self.http(self.openai_port, "/health")[1],
                   repr(self.raw("/grpc.health.v1.Health/Check", "unary", b""))]
        self.assertIn("qlorad_", scraped[0])  # a real scrape
        self.assertRegex(scraped[0], r'qlorad_.*(Generate|generat)')  # the calls were counted
        forbidden = [secret, bogus_token] + list(self.d.tokens.values())
        forbidden += [hashlib.sha256(t.encode()).hexdigest() for t in forbidden]
        for text in scraped:
            for f in forbidden:
                self.assertNotIn(f, text)

    # -- 6. --no-auth binds loopback only ---------------------------------------------------

    def test_no_auth_refuses_non_loopback_addresses(self):
        for flag, address in (("--listen-address", "0.0.0.0:%d" % h.free_port()),
                              ("--listen-address", "[::]:%d" % h.free_port()),
                              ("--metrics-address", "0.0.0.0:%d" % h.free_port()),
                              ("--openai-address", "0.0.0.0:%d" % h.free_port()),
                              ("--console-address", "192.0.2.1:%d" % h.free_port())):
            args = [h.DAEMON, "--state-dir", os.path.join(self.work, "noauth-state"), "--model", self.model, "--no-auth",
                    "--listen-address", "127.0.0.1:%d" % h.free_port(), "--metrics-address", "127.0.0.1:%d" % h.free_port(),
                    flag, address]
            result = subprocess.run(args, capture_output=True, text=True, timeout=120)
            self.assertNotEqual(result.returncode, 0, "%s %s was accepted" % (flag, address))
            self.assertIn("--no-auth refuses %s %s" % (flag, address), result.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.work, "noauth-state")), "refused before touching the state dir")

    # -- 5. TLS minimum version and cipher suites -------------------------------------------

    def handshake(self, port, *args):
        env = dict(os.environ, OPENSSL_CONF="/dev/null")  # the client offers what we ask, whatever the host policy
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "localhost",
                            *args], input="", capture_output=True, text=True, encoding="utf-8", errors="replace",
                           timeout=30, env=env)
        out = r.stdout + r.stderr
        self.assertNotIn("no protocols available", out)  # the client really offered it
        self.assertNotIn("no cipher match", out)
        return "Cipher is (NONE)" not in out and "New, (NONE)" not in out and "handshake failure" not in out \
            and "alert protocol version" not in out and r.returncode == 0, out

    def test_tls_minimum_version_and_ciphers(self):
        certs = make_certs(h.tempdir("qlorad-security-certs-"))
        openai_port = h.free_port()
        d = h.Daemon(h.tempdir("qlorad-security-tls-"), self.model,
                     extra_args=["--tls-cert", certs["server.pem"], "--tls-key", certs["server.key"],
                                 "--openai-address", "127.0.0.1:%d" % openai_port]).start()
        self.addCleanup(d.stop)
        grpc_port = int(d.address.rsplit(":", 1)[1])
        for port, alpn in ((grpc_port, ["-alpn", "h2"]), (openai_port, [])):
            ok, out = self.handshake(port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256", *alpn)
            self.assertTrue(ok, "TLS 1.2 ECDHE-RSA-AES128-GCM-SHA256 refused on %d:\n%s" % (port, out))
            ok, out = self.handshake(port, "-tls1_3", *alpn)
            self.assertTrue(ok, "TLS 1.3 refused on %d:\n%s" % (port, out))
            for args in (["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"], ["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"],
                         ["-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0"], ["-tls1_2", "-cipher", "AES128-GCM-SHA256"],
                         ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA:@SECLEVEL=0"]):
                ok, out = self.handshake(port, *args, *alpn)
                self.assertFalse(ok, "%s accepted on port %d:\n%s" % (" ".join(args), port, out))


if __name__ == "__main__":
    unittest.main(verbosity=2)
