"""Per-request overhead of the OpenAI-compatible HTTP API vs gRPC at batch 1, same daemon,
same run: one-token generations (max_tokens 1, greedy) on the tiny harness model,
alternating HTTP (keep-alive connection, /v1/completions) and gRPC (Generate, raw_prompt),
N requests each; prints p50/p90/p99 latency and the median difference.

  /usr/bin/python3 tests/bench/openai_overhead_bench.py [--requests 300]
(with QLORAD_TOOL / QLORAD_DAEMON pointing at build/server/*, the defaults)."""

import argparse
import http.client
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import daemon_harness as h  # noqa: E402
import grpc  # noqa: E402


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * (len(values) - 1) + 0.5))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    work = h.tempdir("qlorad-openai-bench-")
    model = h.make_model(os.path.join(work, "model"))
    stubs = h.python_stubs(os.path.join(work, "stubs"))
    d = h.Daemon(work, model, extra_args=["--openai-address", "127.0.0.1:0"]).start()
    try:
        inf = stubs["inference"]
        stub = inf[1].InferenceStub(grpc.insecure_channel(d.address))
        conn = http.client.HTTPConnection("127.0.0.1", d.openai_port, timeout=60)
        headers = {"Authorization": "Bearer " + d.tokens["inference"], "Content-Type": "application/json"}
        body = json.dumps({"model": "model", "prompt": "Hello there", "max_tokens": 1, "temperature": 0})
        request = inf[0].GenerateRequest(prompt="Hello there", raw_prompt=True, max_new_tokens=1)

        def via_http():
            conn.request("POST", "/v1/completions", body=body, headers=headers)
            reply = json.loads(conn.getresponse().read())
            return reply["choices"][0]["text"]

        def via_grpc():
            return stub.Generate(request, metadata=d.metadata("inference"), timeout=60).text

        assert via_http() == via_grpc(), "HTTP and gRPC disagree"
        times = {"http": [], "grpc": []}
        for _ in range(args.requests):
            for name, call in (("http", via_http), ("grpc", via_grpc)):
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
        print("%d one-token requests each, alternating, same daemon (%s):" % (args.requests, model))
        for name in ("grpc", "http"):
            t = times[name]
            print("  %-5s p50 %.2f ms  p90 %.2f ms  p99 %.2f ms" % (name, 1e3 * percentile(t, 0.5), 1e3 * percentile(t, 0.9),
                                                                 1e3 * percentile(t, 0.99)))
        delta = statistics.median(times["http"]) - statistics.median(times["grpc"])
        print("  HTTP - gRPC median: %+.2f ms per request" % (1e3 * delta))
    finally:
        d.stop()


if __name__ == "__main__":
    main()
