"""Hot swap under load against the real daemon (loopback gRPC, bounded):

streams run continuously on adapters a@1 and b@1 and on the alias sentiment:prod while
the alias is moved between sentiment@1 and sentiment@2 100 times and unrelated adapters
are loaded, unloaded and evicted (--max-resident-adapters 4). Every response is tagged
with the adapter version it resolved at admission; greedy decoding makes each
version's output fixed, so a response must equal, token for token, what that version
produces alone. Checks: 0 failed requests, every response from one version only, both
versions served through the alias, and no RSS growth after the storm. The daemon keeps its
adapters' factors in bf16 (--adapter-factors bf16; the other daemon tests serve fp32 factors),
so loads, evictions and reloads go through that path too."""

import os
import sys
import threading
import time
import unittest

import grpc

import daemon_harness as h

PROMPT = "Summarise the review in one word"
NEW_TOKENS = 12


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class SwapUnderLoadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.tempdir("qlorad-swap-")
        cls.model = h.make_model(os.path.join(cls.work, "model"))
        cls.adapters = {}
        for seed, name in enumerate(["sentiment-1", "sentiment-2", "a", "b", "u0", "u1", "u2", "u3", "u4", "u5"]):
            out = os.path.join(cls.work, "adapters", name)
            h.subprocess.run([h.TOOL, "make-adapter", "--model", cls.model, "--out", out, "--rank", "8",
                              "--seed", str(seed + 1), "--std", "0.3"], check=True, stdout=h.subprocess.DEVNULL)
            cls.adapters[name] = out
        cls.s = h.python_stubs(os.path.join(cls.work, "stubs"))
        cls.d = h.Daemon(cls.work, cls.model, extra_args=["--max-resident-adapters", "4", "--import-root", cls.work,
                                                             "--adapter-factors", "bf16",
                                                             # the alias moves between two versions both ways: the CI
                                                             # gate (promotion_gate_e2e) passes any comparable pair
                                                             "--promotion-margin", "1"]).start()
        cls.channel = grpc.insecure_channel(cls.d.address)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.d.stop()

    def md(self):
        return self.d.metadata()

    def adapters_call(self, method, request):
        return getattr(self.s["adapters"][1].AdaptersStub(self.channel), method)(request, metadata=self.md(), timeout=60)

    def import_adapter(self, name, directory):
        ad = self.s["adapters"][0]
        return self.adapters_call("ImportAdapter", ad.ImportAdapterRequest(name=name, path=directory)).adapter_id

    def evaluate_and_approve(self, adapter_ids):
        """The lifecycle gate (trained -> evaluated -> approved) on a small hold-out slice."""
        self.d.ctl("datasets", "upload", h.write_sentiment(os.path.join(self.work, "imdb.jsonl")), "--id", "imdb",
                   "--format", "classification")
        ev = self.s["evaluations"]
        stub = ev[1].EvaluationsStub(self.channel)
        for adapter_id in adapter_ids:
            stub.CreateEvaluation(ev[0].CreateEvaluationRequest(dataset_id="imdb", adapter=adapter_id, max_examples=8),
                                  metadata=self.md(), timeout=300)
            self.adapters_call("ApproveAdapter", self.s["adapters"][0].DecisionRequest(adapter=adapter_id, note="swap test"))

    def generate(self, adapter):
        inf = self.s["inference"]
        return inf[1].InferenceStub(self.channel).Generate(
            inf[0].GenerateRequest(adapter=adapter, prompt=PROMPT, max_new_tokens=NEW_TOKENS), metadata=self.md(), timeout=60)

    def stream(self, adapter):
        """(resolved adapter id, tokens) of one streamed generation."""
        inf = self.s["inference"]
        tokens, resolved, finish = [], None, None
        for chunk in inf[1].InferenceStub(self.channel).GenerateStream(
                inf[0].GenerateRequest(adapter=adapter, prompt=PROMPT, max_new_tokens=NEW_TOKENS),
                metadata=self.md(), timeout=120):
            if chunk.finish_reason:
                resolved, finish = chunk.adapter_id, chunk.finish_reason
            else:
                tokens.append(chunk.token)
        return resolved, tokens, finish

    def test_alias_moves_100_times_under_streaming_load(self):
        with open(self.d.log_path) as f:
            self.assertIn("adapter factors: bf16", f.read())
        ad = self.s["adapters"][0]
        ids = {}
        ids["s1"] = self.import_adapter("sentiment", self.adapters["sentiment-1"])
        ids["s2"] = self.import_adapter("sentiment", self.adapters["sentiment-2"])
        ids["a"] = self.import_adapter("a", self.adapters["a"])
        ids["b"] = self.import_adapter("b", self.adapters["b"])
        unrelated = [self.import_adapter("u%d" % i, self.adapters["u%d" % i]) for i in range(6)]
        self.evaluate_and_approve([ids["s1"], ids["s2"]])
        self.adapters_call("LoadAdapter", ad.LoadAdapterRequest(adapter=ids["a"], pin=True))
        self.adapters_call("LoadAdapter", ad.LoadAdapterRequest(adapter=ids["b"]))
        self.adapters_call("PromoteAdapter", ad.PromoteAdapterRequest(adapter=ids["s1"], alias="sentiment:prod"))
        self.adapters_call("LoadAdapter", ad.LoadAdapterRequest(adapter=ids["s2"]))

        expected = {}
        for key in ("s1", "s2", "a", "b"):
            response = self.generate(ids[key])
            self.assertEqual(response.adapter_id, ids[key])
            expected[ids[key]] = list(response.tokens)
        self.assertNotEqual(expected[ids["s1"]], expected[ids["s2"]], "the two versions must be distinguishable")
        for _ in range(5):  # warm up allocator pools before the baseline RSS
            self.stream("sentiment:prod")
        rss_before = rss_bytes(self.d.proc.pid)

        stop = threading.Event()
        lock = threading.Lock()
        results = {"ok": 0, "failed": [], "mixed": [], "served": {}}

        def worker(target):
            while not stop.is_set():
                try:
                    resolved, tokens, finish = self.stream(target)
                except grpc.RpcError as e:
                    with lock:
                        results["failed"].append("%s: %s %s" % (target, e.code(), e.details()))
                    continue
                with lock:
                    if tokens != expected.get(resolved) or finish != "length":
                        results["mixed"].append((target, resolved, tokens, finish))
                    else:
                        results["ok"] += 1
                        results["served"][resolved] = results["served"].get(resolved, 0) + 1

        threads = [threading.Thread(target=worker, args=(t,)) for t in ("sentiment:prod", "sentiment:prod", ids["a"], ids["b"])]
        for t in threads:
            t.start()
        start = time.time()
        for move in range(100):
            target = ids["s2"] if move % 2 == 0 else ids["s1"]
            self.adapters_call("PromoteAdapter", ad.PromoteAdapterRequest(adapter=target, alias="sentiment:prod"))
            if move % 5 == 0:  # churn the unrelated adapters through the LRU bound
                u = unrelated[(move // 5) % len(unrelated)]
                self.adapters_call("LoadAdapter", ad.LoadAdapterRequest(adapter=u))
                if move % 10 == 0:
                    self.adapters_call("UnloadAdapter", ad.AdapterRef(adapter=u))
            time.sleep(0.05)
        storm = time.time() - start
        stop.set()
        for t in threads:
            t.join(timeout=120)
        time.sleep(1.5)  # metrics refresh
        rss_after = rss_bytes(self.d.proc.pid)
        metrics = self.d.metrics()

        print("swap storm: %.1f s, %d responses %s, RSS %.1f -> %.1f MB" % (
            storm, results["ok"], results["served"], rss_before / 1e6, rss_after / 1e6), file=sys.stderr)
        self.assertEqual(results["failed"], [])
        self.assertEqual(results["mixed"], [])
        self.assertGreater(results["served"].get(ids["s1"], 0), 0)
        self.assertGreater(results["served"].get(ids["s2"], 0), 0)
        self.assertGreater(results["served"].get(ids["a"], 0), 0)
        self.assertGreater(results["served"].get(ids["b"], 0), 0)
        evictions = [l for l in metrics.splitlines() if l.startswith("qlorad_adapter_evictions_total")]
        self.assertTrue(evictions and float(evictions[0].split()[-1]) > 0, evictions)
        self.assertIn('qlorad_kv_cache_blocks_used{device="cpu"} 0\n', metrics)  # every sequence's blocks freed
        # No growth: the storm may not keep more than a few MB of the process (allocator slack).
        self.assertLess(rss_after - rss_before, 32 * 1024 * 1024,
                        "RSS grew from %d to %d bytes" % (rss_before, rss_after))


if __name__ == "__main__":
    unittest.main(verbosity=2)
