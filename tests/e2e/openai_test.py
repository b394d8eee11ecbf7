"""The OpenAI-compatible API of the real daemon, driven by the official `openai` npm client
(tests/e2e/openai_client.js) and by plain HTTP, checked against gRPC on the same daemon.

--part api: models list, completions equal gRPC Generate (raw_prompt, same settings),
  streamed chat equals non-streamed, logprobs, 401 / 404 / 400 (max_tokens past the
  context), client disconnect frees the batch slot; bad HTTP bodies each get a 400 naming
  the field while a streaming gRPC client keeps running.
--part structured: 200 seeded temperature-1 generations under each of 5 JSON schemas,
  validated by ajv (independent of qlorad); guided_choice / guided_regex over HTTP and
  gRPC; the unconstrained model does not produce valid JSON (so the check can fail)."""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

import grpc

import daemon_harness as h

PART = "structured" if "--part=structured" in sys.argv or sys.argv[-2:] == ["--part", "structured"] else "api"
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openai_client.js")
CONTEXT = 4096  # the harness model's max_position_embeddings


class OpenAiTestBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.tempdir("qlorad-openai-")
        cls.model = h.make_model(os.path.join(cls.work, "model"))
        adapter_dir = os.path.join(cls.work, "adapter")
        subprocess.run([h.TOOL, "make-adapter", "--model", cls.model, "--out", adapter_dir, "--rank", "8", "--seed", "3",
                        "--std", "0.3"], check=True, stdout=subprocess.DEVNULL)
        cls.s = h.python_stubs(os.path.join(cls.work, "stubs"))
        cls.d = h.Daemon(cls.work, cls.model, extra_args=["--openai-address", "127.0.0.1:0", "--no-require-approval",
                                                          "--max-new-tokens", "8192", "--import-root", cls.work]).start()
        assert cls.d.openai_port, "the daemon did not report its OpenAI port"
        cls.base_url = "http://127.0.0.1:%d/v1" % cls.d.openai_port
        cls.channel = grpc.insecure_channel(cls.d.address)
        ad = cls.s["adapters"]
        stub = ad[1].AdaptersStub(cls.channel)
        cls.adapter_id = stub.ImportAdapter(ad[0].ImportAdapterRequest(name="chat", path=adapter_dir),
                                            metadata=cls.d.metadata(), timeout=60).adapter_id
        # The lifecycle: trained -> evaluated (on a small hold-out slice) -> deployed under the alias.
        cls.d.ctl("datasets", "upload", h.write_sentiment(os.path.join(cls.work, "imdb.jsonl")), "--id", "imdb",
                  "--format", "classification")
        ev = cls.s["evaluations"]
        ev[1].EvaluationsStub(cls.channel).CreateEvaluation(
            ev[0].CreateEvaluationRequest(dataset_id="imdb", adapter=cls.adapter_id, max_examples=8),
            metadata=cls.d.metadata(), timeout=300)
        stub.PromoteAdapter(ad[0].PromoteAdapterRequest(adapter=cls.adapter_id, alias="chat:prod"),
                            metadata=cls.d.metadata(), timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.d.stop()

    def grpc_generate(self, **fields):
        inf = self.s["inference"]
        return inf[1].InferenceStub(self.channel).Generate(inf[0].GenerateRequest(**fields),
                                                           metadata=self.d.metadata("inference"), timeout=120)

    def run_client(self, part, expected):
        path = os.path.join(self.work, "expected-%s.json" % part)
        with open(path, "w") as f:
            json.dump(expected, f)
        env = dict(os.environ, QLORAD_OPENAI_URL=self.base_url, QLORAD_TOKEN=self.d.tokens["inference"],
                   QLORAD_VIEWER_TOKEN=self.d.tokens["viewer"], QLORAD_METRICS_URL="http://127.0.0.1:%d/metrics" %
                   self.d.metrics_port, QLORAD_NPM=h.NPM, QLORAD_EXPECTED=path, QLORAD_PART=part)
        result = subprocess.run(["node", CLIENT], env=env, capture_output=True, text=True, timeout=1200)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        self.assertEqual(result.returncode, 0, "openai client checks failed:\n" + result.stderr[-4000:])
        return json.loads(result.stdout.strip().splitlines()[-1])

    def post(self, path, body, token=None, raw=None):
        data = raw if raw is not None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer " + (token or self.d.tokens["inference"])})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


@unittest.skipUnless(PART == "api", "part api")
class OpenAiApiTest(OpenAiTestBase):
    def test_client_against_grpc(self):
        prompt = "The capital of France is"
        ref = self.grpc_generate(adapter="chat:prod", prompt=prompt, raw_prompt=True, max_new_tokens=12, temperature=0.8,
                                 seed=5)
        self.assertTrue(ref.tokens)
        report = self.run_client("api", {
            "base_model": os.path.basename(self.model), "adapter_id": self.adapter_id, "alias": "chat:prod",
            "prompt": prompt, "grpc_text": ref.text, "grpc_tokens": len(ref.tokens), "grpc_finish": ref.finish_reason,
            "context": CONTEXT})
        print("disconnect: slot freed %.2f s after the stream began; the full request would take ~%.1f s" %
              (report["disconnect_freed_seconds"], report["disconnect_full_run_seconds"]))

    def test_bad_requests_are_400s_while_grpc_streams(self):
        inf = self.s["inference"]
        outcome = {}

        def stream():
            chunks = list(inf[1].InferenceStub(self.channel).GenerateStream(
                inf[0].GenerateRequest(prompt="Once upon a time", raw_prompt=True, max_new_tokens=300, temperature=1,
                                       seed=9), metadata=self.d.metadata("inference"), timeout=300))
            outcome["chunks"], outcome["end"] = chunks, time.time()

        streamer = threading.Thread(target=stream)
        streamer.start()
        burst_start = time.time()
        cases = [
            (None, b"{not json", "body"),
            ({"model": "chat:prod", "prompt": "x", "max_tokens": "ten"}, None, "max_tokens"),
            ({"model": "chat:prod", "prompt": "x", "temperature": 7}, None, "temperature"),
            ({"model": "chat:prod", "prompt": "x", "frobnicate": 1}, None, "frobnicate"),
            ({"model": "chat:prod", "prompt": ["a", "b"]}, None, "prompt"),
            ({"model": "chat:prod", "prompt": "x", "n": 2}, None, "n"),
            ({"prompt": "x"}, None, "model"),
            ({"model": "chat:prod", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, None, "stop"),
            ({"model": "chat:prod", "prompt": "x", "guided_regex": "(?=x)"}, None, "guided_regex"),
            ({"model": "chat:prod", "prompt": "x", "guided_choice": ["a"], "guided_regex": "a"}, None, "guided_regex"),
            ({"model": "chat:prod", "prompt": "x", "response_format": {"type": "json_schema", "json_schema": {
                "name": "t", "schema": {"type": "array", "uniqueItems": True}}}}, None, "response_format.json_schema.schema"),
            (None, json.dumps({"model": "chat:prod", "prompt": "x" * (5 << 20)}).encode(), "body"),
        ]
        chat_cases = [
            ({"model": "chat:prod", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
            ({"model": "chat:prod", "messages": []}, "messages"),
            ({"model": "chat:prod", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}, "tools"),
            ({"model": "chat:prod", "messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "xml"}},
             "response_format.type"),
        ]
        for _ in range(10):  # a burst
            for body, raw, param in cases:
                code, reply = self.post("/completions", body, raw=raw)
                self.assertEqual(code, 400, (param, reply))
                self.assertEqual(reply["error"]["param"], param, reply)
                self.assertEqual(reply["error"]["type"], "invalid_request_error")
                self.assertTrue(reply["error"]["message"])
            for body, param in chat_cases:
                code, reply = self.post("/chat/completions", body)
                self.assertEqual(code, 400, (param, reply))
                self.assertEqual(reply["error"]["param"], param, reply)
        self.assertIn("uniqueItems", self.post("/completions", cases[10][0])[1]["error"]["message"])
        burst_end = time.time()
        streamer.join(timeout=300)
        self.assertIn("chunks", outcome, "the gRPC stream failed during the burst")
        self.assertEqual(outcome["chunks"][-1].finish_reason, "length")
        self.assertEqual(sum(1 for c in outcome["chunks"] if c.token >= 0 and not c.finish_reason), 300)
        print("gRPC stream: 300 tokens, ended %.1f s after the burst began (burst took %.1f s)" %
              (outcome["end"] - burst_start, burst_end - burst_start))

    def test_auth_roles_and_unknown_routes(self):
        code, reply = self.post("/completions", {"model": "chat:prod", "prompt": "x"}, token="viewer-secret")
        self.assertEqual(code, 403)
        self.assertEqual(reply["error"]["type"], "permission_error")
        req = urllib.request.Request(self.base_url + "/models", headers={"Authorization": "Bearer viewer-secret"})
        with urllib.request.urlopen(req, timeout=30) as r:
            self.assertEqual(json.loads(r.read())["data"], [])  # a viewer may use no model
        req = urllib.request.Request(self.base_url + "/models")
        with self.assertRaises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(req, timeout=30)
        self.assertEqual(missing.exception.code, 401)
        self.assertEqual(json.loads(missing.exception.read())["error"]["code"], "invalid_api_key")
        with self.assertRaises(urllib.error.HTTPError) as no_route:
            urllib.request.urlopen(self.base_url + "/embeddings", timeout=30)
        self.assertEqual(no_route.exception.code, 404)
        self.assertIn("no route GET /v1/embeddings", json.loads(no_route.exception.read())["error"]["message"])


@unittest.skipUnless(PART == "api", "part api")
class OpenAiTlsAndRateLimitTest(unittest.TestCase):
    """The HTTP front end uses the daemon's certificate and the same per-token rate limits."""

    def test_https_and_429(self):
        import ssl
        from auth_test import make_certs
        work = h.tempdir("qlorad-openai-tls-")
        model = h.make_model(os.path.join(work, "model"))
        certs = make_certs(h.tempdir("qlorad-openai-certs-"))
        d = h.Daemon(work, model, extra_args=["--openai-address", "127.0.0.1:0", "--tls-cert", certs["server.pem"],
                                              "--tls-key", certs["server.key"], "--rate-limit", "5"]).start()
        self.addCleanup(d.stop)
        context = ssl.create_default_context(cafile=certs["ca.pem"])
        url = "https://127.0.0.1:%d/v1/models" % d.openai_port
        headers = {"Authorization": "Bearer " + d.tokens["inference"]}
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=context, timeout=30) as r:
            self.assertEqual(r.status, 200)
            self.assertIn("model", [m["id"] for m in json.loads(r.read())["data"]])
        with self.assertRaises(Exception):  # plain HTTP is not served on the TLS port
            urllib.request.urlopen("http://127.0.0.1:%d/v1/models" % d.openai_port, timeout=10).read()
        codes = []
        for _ in range(30):
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=context, timeout=30) as r:
                    codes.append(r.status)
            except urllib.error.HTTPError as e:
                codes.append(e.code)
                if e.code == 429:
                    self.assertEqual(json.loads(e.read())["error"]["type"], "rate_limit_error")
        self.assertEqual(codes[0], 200)
        self.assertIn(429, codes)


@unittest.skipUnless(PART == "api", "part api")
class OpenAiDrainTest(unittest.TestCase):
    """SIGTERM drains: while in-flight gRPC calls finish, new HTTP requests get 503."""

    def test_503_while_draining(self):
        import signal
        work = h.tempdir("qlorad-openai-drain-")
        model = h.make_model(os.path.join(work, "model"))
        stubs = h.python_stubs(os.path.join(work, "stubs"))
        d = h.Daemon(work, model, extra_args=["--openai-address", "127.0.0.1:0", "--max-new-tokens", "3000",
                                              "--drain-seconds", "60"]).start()
        self.addCleanup(d.stop)
        inf = stubs["inference"]
        channel = grpc.insecure_channel(d.address)
        self.addCleanup(channel.close)
        stream = inf[1].InferenceStub(channel).GenerateStream(
            inf[0].GenerateRequest(prompt="Once", raw_prompt=True, max_new_tokens=3000, temperature=1, seed=1),
            metadata=d.metadata("inference"), timeout=300)
        next(stream)  # admitted and producing
        d.proc.send_signal(signal.SIGTERM)
        url = "http://127.0.0.1:%d/v1/models" % d.openai_port
        headers = {"Authorization": "Bearer " + d.tokens["inference"]}
        code, reply = None, None
        for _ in range(50):
            try:
                urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10).read()
            except urllib.error.HTTPError as e:
                code, reply = e.code, json.loads(e.read())
                break
            time.sleep(0.1)
        self.assertEqual(code, 503)
        self.assertIn("draining", reply["error"]["message"])
        rest = list(stream)  # the in-flight stream still finishes
        self.assertEqual(rest[-1].finish_reason, "length")
        self.assertEqual(1 + sum(1 for c in rest if c.token >= 0 and not c.finish_reason), 3000)


SCHEMAS = {
    "nested_object": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 12},
            "address": {"type": "object", "properties": {
                "city": {"type": "string", "maxLength": 10},
                "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}, "required": ["city", "zip"],
                "additionalProperties": False},
        },
        "required": ["name", "address"], "additionalProperties": False},
    "enum": {
        "type": "object",
        "properties": {"label": {"enum": ["positive", "negative", "neutral"]},
                       "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
        "required": ["label", "confidence"], "additionalProperties": False},
    "array": {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "minItems": 1, "maxItems": 4}},
        "required": ["tags"], "additionalProperties": False},
    "pattern": {
        "type": "object",
        "properties": {"invoice": {"type": "string", "pattern": "^INV-[0-9]{4}-[A-Z]{2}$"},
                       "paid": {"type": "boolean"}},
        "required": ["invoice", "paid"], "additionalProperties": False},
    "integer_bounds": {
        "$defs": {"qty": {"type": "integer", "minimum": -5, "maximum": 120}},
        "type": "object",
        "properties": {"quantity": {"$ref": "#/$defs/qty"}, "rating": {"type": "integer", "exclusiveMinimum": 0,
                                                                      "exclusiveMaximum": 6},
                       "note": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 6}]}},
        "required": ["quantity", "rating"], "additionalProperties": False},
}


@unittest.skipUnless(PART == "structured", "part structured")
class StructuredOutputTest(OpenAiTestBase):
    def test_schemas_choice_regex_over_http(self):
        report = self.run_client("structured", {"alias": "chat:prod", "base_model": os.path.basename(self.model),
                                                "schemas": SCHEMAS, "samples": 200})
        for name in SCHEMAS:
            self.assertEqual(report["valid"][name], 200, name)
        self.assertLess(report["unconstrained_valid"], report["unconstrained_total"])

    def test_grpc_fields(self):
        outputs = []
        for seed in range(20):
            r = self.grpc_generate(adapter="chat:prod", prompt="Extract:", raw_prompt=True, max_new_tokens=200,
                                   temperature=1, seed=seed + 1, guided_json=json.dumps(SCHEMAS["enum"]))
            self.assertEqual(r.finish_reason, "stop", r.text)
            outputs.append(r.text)
            choice = self.grpc_generate(prompt="Sentiment:", raw_prompt=True, max_new_tokens=20, temperature=1,
                                        seed=seed + 1, guided_choice=["positive", "negative"])
            self.assertIn(choice.text, ["positive", "negative"])
            code = self.grpc_generate(prompt="Code:", raw_prompt=True, max_new_tokens=40, temperature=1, seed=seed + 1,
                                      guided_regex=r"[A-Z]{2}-\d{3}(-x)?")
            self.assertRegex(code.text, r"^[A-Z]{2}-\d{3}(-x)?$")
        for text in outputs:
            value = json.loads(text)
            self.assertIn(value["label"], ["positive", "negative", "neutral"])
            self.assertTrue(0 <= value["confidence"] <= 1)
        with self.assertRaises(grpc.RpcError) as bad:
            self.grpc_generate(prompt="x", raw_prompt=True, guided_json='{"type":"string","format":"email"}')
        self.assertEqual(bad.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("guided_json.format: format 'email' is not supported", bad.exception.details())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["api", "structured"], default="api")
    _, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest)
