"""The second-language client: Python stubs generated from proto/ drive the workflow's core
calls, including the streaming ones (client-streaming upload, server-streaming WatchJob and
GenerateStream), plus grpc.health.v1, server reflection, the transport size limit,
deadlines and client cancellation."""

import os
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
        cls.d = h.Daemon(cls.work, cls.model).start()
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
            lora=jobs.LoraSettings(r=8), hyperparameters=jobs.Hyperparameters(epochs=1, batch_size=8, max_seq_len=128)),
            metadata=self.md("trainer"))
        self.assertEqual(job.status, "queued")
        events = list(self.stub("jobs").WatchJob(jobs.WatchJobRequest(job_id=job.job_id), metadata=self.md("viewer")))
        types = [e.type for e in events]
        self.assertIn("progress", types)
        self.assertIn("checkpoint", types)
        self.assertEqual([e.status for e in events if e.type == "status"][-1], "succeeded")
        steps = [e.progress.step for e in events if e.type == "progress"]
        self.assertEqual(steps, sorted(steps))
        self.assertEqual(steps[-1], events[-2].progress.total_steps if events[-2].type == "progress" else steps[-1])
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
        reply = b"".join(reflection(iter([b"\x3a\x00"]), timeout=10))  # list_services
        for service in (b"qlorad.v1.Jobs", b"qlorad.v1.Inference", b"grpc.health.v1.Health"):
            self.assertIn(service, reply)

    def test_oversize_message_is_refused(self):
        inf = self.s["inference"][0]
        with self.assertRaises(grpc.RpcError) as e:
            self.stub("inference").Generate(inf.GenerateRequest(prompt="x" * (5 << 20)), metadata=self.md("inference"), timeout=30)
        self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)

    def test_deadline_and_cancellation_stop_generation(self):
        inf = self.s["inference"][0]
        request = inf.GenerateRequest(prompt="Tell me a long story", max_new_tokens=500, raw_prompt=True)
        start = time.time()
        full = self.stub("inference").Generate(request, metadata=self.md("inference"), timeout=120)
        full_seconds = time.time() - start
        self.assertEqual(len(full.tokens), 500)
        with self.assertRaises(grpc.RpcError) as e:
            self.stub("inference").Generate(request, metadata=self.md("inference"), timeout=0.05)
        self.assertEqual(e.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        stream = self.stub("inference").GenerateStream(request, metadata=self.md("inference"))
        next(stream)
        stream.cancel()
        start = time.time()
        # The server stops generating: a fresh request is served promptly (not queued behind 500 tokens).
        quick = self.stub("inference").Generate(inf.GenerateRequest(prompt="hi", max_new_tokens=1), metadata=self.md("inference"),
                                                timeout=30)
        self.assertEqual(len(quick.tokens), 1)
        self.assertLess(time.time() - start, full_seconds / 2, "the cancelled stream kept the model busy")


if __name__ == "__main__":
    unittest.main(verbosity=2)
