"""Load test (bounded, loopback only): N concurrent Generate requests (default 1000) against
the real daemon on the tiny model while a QLoRA training job runs, and the same load with no
training for comparison. Every request must succeed: ok == requests in both runs (none
failed, lost or still pending). Prints p50/p99 latency and throughput (recorded in
tests/bench/RESULTS.md). Usage: load_test.py [--requests N] [--tokens T]"""

import argparse
import os
import statistics
import sys
import threading
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_harness as h  # noqa: E402


def run_load(stubs, channel, token, requests, tokens):
    inf_pb, inf_grpc = stubs["inference"]
    stub = inf_grpc.InferenceStub(channel)
    latencies, errors = [], []
    lock = threading.Lock()
    done = threading.Event()
    start = time.time()

    def finished(future, sent):
        try:
            response = future.result()
            assert len(response.tokens) >= 1
            with lock:
                latencies.append(time.time() - sent)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            with lock:
                errors.append(repr(e))
        with lock:
            if len(latencies) + len(errors) == requests:
                done.set()

    for i in range(requests):
        request = inf_pb.GenerateRequest(prompt="Review %d: the food was" % i, max_new_tokens=tokens, raw_prompt=True)
        sent = time.time()
        future = stub.Generate.future(request, metadata=[("authorization", "Bearer " + token)], timeout=600)
        future.add_done_callback(lambda f, sent=sent: finished(f, sent))
    done.wait(900)
    wall = time.time() - start
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")  # noqa: E731
    return {"requests": requests, "ok": len(latencies), "errors": errors[:5], "error_count": len(errors), "wall_s": wall,
            "p50_s": pick(0.50), "p99_s": pick(0.99), "mean_s": statistics.mean(latencies) if latencies else float("nan"),
            "req_per_s": len(latencies) / wall, "tokens_per_s": len(latencies) * tokens / wall}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=4)
    args = parser.parse_args()
    work = h.tempdir("qlorad-load-")
    model = h.make_model(os.path.join(work, "model"))
    data = h.write_sentiment(os.path.join(work, "imdb.jsonl"))
    stubs = h.python_stubs(os.path.join(work, "stubs"))
    d = h.Daemon(work, model).start()
    try:
        channel = grpc.insecure_channel(d.address)
        idle = run_load(stubs, channel, d.tokens["inference"], args.requests, args.tokens)
        d.ctl("datasets", "upload", data, "--id", "imdb", "--format", "classification")
        job = d.ctl_json("jobs", "submit", "--dataset", "imdb", "--name", "load", "--epochs", "50", "--batch-size", "8",
                         "--max-seq-len", "128")
        while d.ctl_json("jobs", "get", job["job_id"])["status"] != "running":
            time.sleep(0.1)
        training = run_load(stubs, channel, d.tokens["inference"], args.requests, args.tokens)
        still_running = d.ctl_json("jobs", "get", job["job_id"])
        d.ctl("jobs", "cancel", job["job_id"])
    finally:
        d.stop()
    for name, r in (("no training", idle), ("while training", training)):
        print("%-15s %d/%d ok, %d errors; p50 %.3f s, p99 %.3f s, mean %.3f s; %.1f req/s, %.1f generated tok/s, wall %.1f s"
              % (name, r["ok"], r["requests"], r["error_count"], r["p50_s"], r["p99_s"], r["mean_s"], r["req_per_s"],
                 r["tokens_per_s"], r["wall_s"]))
    print("training job during the loaded run: status %s, step %s/%s" % (
        still_running["status"], still_running.get("progress", {}).get("step"), still_running.get("progress", {}).get("total_steps")))
    failed = idle["error_count"] + training["error_count"]
    answered = [r["ok"] == r["requests"] == args.requests for r in (idle, training)]
    if failed or not all(answered) or still_running["status"] != "running":
        print("FAILED: %d request errors %s; ok/requests %d/%d idle, %d/%d training; job %s" % (
            failed, idle["errors"] + training["errors"], idle["ok"], idle["requests"], training["ok"], training["requests"],
            still_running["status"]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
