"""The second-language client: Python stubs generated from proto/ drive the workflow's core
calls, including the streaming ones (client-streaming upload, server-streaming WatchJob and
GenerateStream), plus grpc.health.v1, server reflection, the transport size limit,
deadlines and client cancellation. The job is submitted with LoRA+, packing and DoRA; its
resolved spec must carry all three, and the DoRA adapter it writes is loaded and served."""

import json
import os
import re
import time
import unittest

import grpc

import daemon_harness as h


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.tempdir("qlorad-py-")
        cls.model = h.make_model(os.path.join(cls.work, "model"))
        cls.data = h.write_sentiment(os.path.join(cls.work, "yelp.jsonl"), source="yelp")
        cls.s = h.python_stubs(os.path.join(cls.work, "stubs"))
        cls.d = h.Daemon(cls.work, cls.model, extra_args=["--max-new-tokens", "2000", "--device", "cpu"]).start()
        cls.channel = grpc.insecure_channel(cls.d.address)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.d.stop()

    def stub(self, name):
        return getattr(self.s[name][1], name.capitalize() + "Stub")(self.channel)

    def md(self, role="admin"):
        return [("authorization", "Bearer " + self.d.tokens[role])]

    def test_core_workflow_with_streaming_calls(self):
        ds, jobs, ad, inf = (self.s[n][0] for n in ("datasets", "jobs", "adapters", "inference"))

        def upload():
            yield ds.UploadDatasetRequest(header=ds.UploadDatasetHeader(dataset_id="yelp", format="classification"))
            with open(self.data, "rb") as f:
                while chunk := f.read(4096):  # many small chunks
                    yield ds.UploadDatasetRequest(chunk=chunk)
        dataset = self.stub("datasets").UploadDataset(upload(), metadata=self.md("trainer"))
        self.assertEqual(dataset.dataset_id, "yelp")
        self.assertGreater(dataset.train_examples, 700)
        self.assertEqual(len(dataset.train_sha256), 64)
        job = self.stub("jobs").CreateJob(jobs.CreateJobRequest(
            dataset_id="yelp", adapter_name="yelp-sentiment", quantize="nf4",
            lora=jobs.LoraSettings(r=8, use_dora=True), hyperparameters=jobs.Hyperparameters(
                epochs=1, batch_size=8, max_seq_len=128, loraplus_lr_ratio=4, packing=True)),
            metadata=self.md("trainer"))
        self.assertEqual(job.status, "queued")
        spec = json.loads(self.stub("jobs").GetJob(jobs.GetJobRequest(job_id=job.job_id), metadata=self.md("viewer")).spec_json)
        self.assertEqual((spec["trainer"]["loraplus_lr_ratio"], spec["trainer"]["packing"], spec["lora"]["use_dora"]),
                         (4, True, True), spec)
        events = list(self.stub("jobs").WatchJob(jobs.WatchJobRequest(job_id=job.job_id), metadata=self.md("viewer")))
        types = [e.type for e in events]
        self.assertIn("progress", types)
        self.assertIn("checkpoint", types)
        self.assertEqual([e.status for e in events if e.type == "status"][-1], "succeeded")
        progress = [e.progress for e in events if e.type == "progress"]
        steps = [p.step for p in progress]
        self.assertGreaterEqual(len(set(steps)), 2, "at least two distinct progress events: %s" % steps)
        self.assertEqual(steps, sorted(steps))
        self.assertLess(steps[0], steps[-1])
        total = progress[-1].total_steps
        self.assertGreater(total, 1)
        self.assertEqual({p.total_steps for p in progress}, {total})  # one plan for the whole run
        self.assertEqual(steps[-1], total, "the last progress event reports the final step")
        adapter_id = events[-1].adapter_id
        self.assertEqual(adapter_id, "yelp-sentiment@1")
        loaded = self.stub("adapters").LoadAdapter(ad.LoadAdapterRequest(adapter=adapter_id), metadata=self.md("deployer"))
        self.assertTrue(loaded.loaded)
        chunks = list(self.stub("inference").GenerateStream(
            inf.GenerateRequest(adapter=adapter_id, prompt="The pasta was", max_new_tokens=6), metadata=self.md("inference")))
        self.assertEqual(chunks[-1].finish_reason in ("length", "stop"), True)
        self.assertEqual(chunks[-1].adapter_id, adapter_id)
        self.assertGreaterEqual(len(chunks), 2)
        unary = self.stub("inference").Generate(inf.GenerateRequest(adapter=adapter_id, prompt="The pasta was", max_new_tokens=6),
                                                metadata=self.md("inference"))
        self.assertEqual(list(unary.tokens), [c.token for c in chunks[:-1]])  # greedy: stream == unary

    def test_health_and_reflection(self):
        check = self.channel.unary_unary("/grpc.health.v1.Health/Check")
        self.assertEqual(check(b"", timeout=10), b"\x08\x01")  # HealthCheckResponse{status: SERVING}
        reflection = self.channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        reply = b"".join(reflection(iter([b"\x3a\x00"]), metadata=self.md("inference"), timeout=10))  # list_services
        for service in (b"qlorad.v1.Jobs", b"qlorad.v1.Inference", b"grpc.health.v1.Health"):
            self.assertIn(service, reply)
        with self.assertRaises(grpc.RpcError) as e:  # reflection needs a token (any role); health does not
            b"".join(reflection(iter([b"\x3a\x00"]), timeout=10))
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

    def test_oversize_message_is_refused(self):
        inf = self.s["inference"][0]
        with self.assertRaises(grpc.RpcError) as e:
            self.stub("inference").Generate(inf.GenerateRequest(prompt="x" * (5 << 20)), metadata=self.md("inference"), timeout=30)
        self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)

    def scrape(self):
        """(running-requests gauge, KV blocks reserved, {(method, code): count}) from the daemon's /metrics."""
        text = self.d.metrics()
        gauge = lambda name: float(re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % name, text, re.M).group(1))  # noqa: E731
        calls = {(m, c): float(v) for c, m, v in re.findall(
            r'^qlorad_rpc_requests_total\{code="(\w+)",method="(\w+)",service="qlorad.v1.Inference"\} (\S+)$', text, re.M)}
        return gauge("qlorad_inference_requests_running"), gauge("qlorad_kv_cache_blocks_reserved"), calls

    def wait_metrics(self, predicate, timeout):
        """Polls /metrics (the gauges refresh every second) until predicate(scrape()); returns
        (scrape, seconds waited) or fails with the last scrape."""
        start = time.time()
        while True:
            got = self.scrape()
            if predicate(got):
                return got, time.time() - start
            if time.time() - start > timeout:
                self.fail("metrics did not reach the expected state in %.1f s: %s" % (timeout, got))
            time.sleep(0.05)

    def test_deadline_and_cancellation_stop_generation(self):
        """Server side, not just the client: a missed deadline and a cancelled stream end the
        sequence in the engine (the handler returns CANCELLED, the running-requests gauge drops
        to 0 and the KV blocks are given back) long before the 2,000 tokens would have ended."""
        inf = self.s["inference"][0]
        request = inf.GenerateRequest(prompt="Tell me a long story", max_new_tokens=2000, raw_prompt=True)
        idle, _ = self.wait_metrics(lambda m: m[0] == 0, 30)
        start = time.time()
        full = self.stub("inference").Generate(request, metadata=self.md("inference"), timeout=300)
        full_seconds = time.time() - start
        self.assertEqual(len(full.tokens), 2000)
        self.assertGreater(full_seconds, 3, "too fast to tell a stopped sequence from a finished one on /metrics")
        cancelled = lambda m, method: m[2].get((method, "CANCELLED"), 0)  # noqa: E731
        ok = lambda m, method: m[2].get((method, "OK"), 0)  # noqa: E731

        before, _ = self.wait_metrics(lambda m: m[0] == 0 and m[1] == idle[1], 30)
        start = time.time()
        with self.assertRaises(grpc.RpcError) as e:
            self.stub("inference").Generate(request, metadata=self.md("inference"), timeout=0.5)
        self.assertEqual(e.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        after, _ = self.wait_metrics(lambda m: cancelled(m, "Generate") == cancelled(before, "Generate") + 1
                                     and m[0] == 0 and m[1] == idle[1], full_seconds)
        self.assertLess(time.time() - start, full_seconds / 2, "the server kept generating past the deadline")
        self.assertEqual(ok(after, "Generate"), ok(before, "Generate"), "the server finished the expired request")

        stream = self.stub("inference").GenerateStream(request, metadata=self.md("inference"))
        next(stream)
        busy, _ = self.wait_metrics(lambda m: m[0] >= 1 and m[1] > idle[1], full_seconds / 2)  # the sequence holds a slot
        stream.cancel()
        start = time.time()
        freed, seconds = self.wait_metrics(lambda m: m[0] == 0 and m[1] == idle[1], full_seconds)
        self.assertLess(seconds, full_seconds / 2, "the cancelled stream kept its batch slot")
        self.wait_metrics(lambda m: cancelled(m, "GenerateStream") == cancelled(busy, "GenerateStream") + 1, 10)
        self.assertEqual(ok(self.scrape(), "GenerateStream"), ok(busy, "GenerateStream"))
        # And the model is free: a fresh request is served promptly.
        quick = self.stub("inference").Generate(inf.GenerateRequest(prompt="hi", max_new_tokens=1), metadata=self.md("inference"),
                                                timeout=30)
        self.assertEqual(len(quick.tokens), 1)
        self.assertLess(time.time() - start, full_seconds / 2)

if __name__ == "__main__":
    unittest.main(verbosity=2)
