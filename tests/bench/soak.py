#!/usr/bin/env python3
"""Soak run (issue 21; bounded, loopback only, not part of ctest): mixed traffic for
--seconds N (default 600) against one real qlorad on the tiny harness model.

Traffic, all concurrent, each request with the role that would send it:
  generate        unary Generate on the base model and on the alias sentiment:prod
  generate_lru    unary Generate on 6 adapters with --max-resident-adapters 3 (the LRU evicts
                  and reloads them), plus one generate per churned adapter (below)
  stream_cancel   GenerateStream (max 200 tokens) cancelled by the client after 1-8 chunks
  classify        Classify on sentiment:prod (labels negative/positive)
  alias_move      PromoteAdapter moving sentiment:prod between sentiment@1 and @2
  adapter_load / adapter_unload   3 more adapters loaded, used once, unloaded, in turn
  upload_ok / upload_bad / dataset_delete   classification uploads (250 rows; the good ones
                  are deleted again); the bad ones carry malformed rows and must be refused
                  with INVALID_ARGUMENT (an expected refusal, counted apart from failures)
  job             one small QLoRA job (240-row dataset, 1 epoch) submitted at the start; it
                  must finish with status succeeded (waited for after the traffic if needed)

Measured: requests, ok, expected refusals, failures and p50/p99 latency per type; the
daemon's RSS (/proc/PID/status VmRSS; RssAnon and RssFile reported too) and open FDs
(/proc/PID/fd, the least of 5 reads 0.1 s apart: in-flight is not leaked) every 5 s, with a
least-squares slope over the samples after the warm-up (first 20 % of the run); the
KV-block and adapter pool gauges of /metrics before and after the traffic.

Pass (exit 0) only if: no failures (requests that should have succeeded, or bad uploads
accepted); the job succeeded; RSS slope <= 1024 KB/min; FD slope <= 0.5 FD/min; and once
the traffic stops, no KV block is used or reserved and no sequence is running. The RSS bound:
the process sits at a few hundred MB; 1 MB/min is 1.4 GB a day, which would take a server down
within days. At this run's rate (~5,000 requests a minute) it catches a leak of ~200 bytes per
request. Measured on the 2-vCPU dev machine (240 s runs with --only): generate+stream 0.3,
admin 0.4, datasets 0.6 MB/min; classify alone 12.8 MB/min under default glibc malloc, but flat
(-0.03) with MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=65536: allocator growth, not a leak. The
daemon now caps arenas itself (--malloc-arenas, default 2): the full 600-s run went from 2.8 to
0.5 MB/min (tests/bench/RESULTS.md).

Usage (from the repository root, after the build): tests/bench/soak.py [--seconds 600] [--only LOOPS]
(the daemon inherits the environment; --daemon-arg=--malloc-arenas --daemon-arg=0 gives glibc's default arenas)
Prints progress, then a JSON summary and a markdown table for tests/bench/RESULTS.md."""

import argparse
import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter, defaultdict

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import daemon_harness as h  # noqa: E402

RSS_BOUND_KB_MIN = 1024.0
FD_BOUND_MIN = 0.5
SAMPLE_S = 5.0
GAUGES = re.compile(r"^(qlorad_kv_cache_blocks_\w+|qlorad_adapters_resident|qlorad_adapters_registered|"
                    r"qlorad_adapter_(?:loads|unloads|evictions|load_failures)_total|qlorad_inference_requests_(?:running|waiting)|"
                    r"qlorad_engine_memory_bytes|qlorad_process_resident_memory_bytes)(\{[^}]*\})? (\S+)$", re.M)


class Stats:
    """Per request type: ok, expected refusals, failures (with a few examples), latencies."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ok, self.expected, self.failed = Counter(), Counter(), Counter()
        self.latency = defaultdict(list)
        self.examples, self.refusals = [], {}  # failures (a few), the first expected refusal per type

    def call(self, kind, fn, expect=()):
        """Runs fn(); a grpc error whose code is in `expect` is an expected refusal. With
        `expect` set, success itself is a failure (the request should have been refused)."""
        start = time.time()
        try:
            result, outcome = fn(), ("failed" if expect else "ok")
            detail = "accepted, expected one of %s" % [c.name for c in expect]
        except grpc.RpcError as e:
            result, outcome = None, ("expected" if e.code() in expect else "failed")
            detail = "%s: %s" % (e.code().name, (e.details() or "")[:300])
        except Exception as e:  # noqa: BLE001 - every failure is reported
            result, outcome, detail = None, "failed", repr(e)[:300]
        with self.lock:
            getattr(self, outcome)[kind] += 1
            self.latency[kind].append(time.time() - start)
            if outcome == "failed" and len(self.examples) < 20:
                self.examples.append("%s: %s" % (kind, detail))
            if outcome == "expected" and kind not in self.refusals:
                self.refusals[kind] = detail
        return result

    def table(self):
        rows = {}
        for kind in sorted(self.latency):
            lat = sorted(self.latency[kind])
            pick = lambda q: 1000 * lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
            rows[kind] = {"requests": len(lat), "ok": self.ok[kind], "expected_refusals": self.expected[kind],
                          "failures": self.failed[kind], "p50_ms": round(pick(0.5), 1), "p99_ms": round(pick(0.99), 1)}
        return rows


def proc_sample(pid):
    """(VmRSS, RssAnon, RssFile) in KB and open FDs: the least of 5 reads 0.1 s apart, since an
    upload's temporary file or a connection being set up is in flight, not leaked."""
    with open("/proc/%d/status" % pid) as f:
        kb = {line.split(":")[0]: int(line.split()[1]) for line in f if line.startswith(("VmRSS:", "RssAnon:", "RssFile:"))}
    fds = []
    for i in range(5):
        fds.append(len(os.listdir("/proc/%d/fd" % pid)))
        time.sleep(0.1 if i < 4 else 0)
    return kb["VmRSS"], min(fds), kb["RssAnon"], kb["RssFile"]


def slope_per_min(points):
    """Least-squares slope of (seconds, value) points, per minute."""
    n = len(points)
    if n < 3:
        return float("nan")
    mt, mv = sum(t for t, _ in points) / n, sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return 60.0 * sum((t - mt) * (v - mv) for t, v in points) / var if var else float("nan")


def gauges(d):
    return {name + (labels or ""): float(value) for name, labels, value in GAUGES.findall(d.metrics())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--only", default="", help="comma-separated traffic loops to run (to bisect a leak): generate, "
                        "generate_lru, stream, classify, admin (alias moves, load/unload), datasets; default all")
    parser.add_argument("--daemon-arg", action="append", default=[],
                        help="one more qlorad argument (repeatable), e.g. --daemon-arg=--malloc-arenas --daemon-arg=0 (glibc default)")
    args = parser.parse_args()
    os.chdir(h.SOURCE_DIR)  # the harness names the binaries relative to the repository root
    rng = random.Random(args.seed)
    work = h.tempdir("qlorad-soak-")
    model = h.make_model(os.path.join(work, "model"))
    names = ["sentiment-1", "sentiment-2"] + ["lru%d" % i for i in range(6)] + ["churn%d" % i for i in range(3)]
    for seed, name in enumerate(names):
        h.subprocess.run([h.TOOL, "make-adapter", "--model", model, "--out", os.path.join(work, "adapters", name),
                          "--rank", "8", "--seed", str(seed + 1), "--std", "0.3"], check=True, stdout=h.subprocess.DEVNULL)
    with open(h.write_sentiment(os.path.join(work, "imdb.jsonl"))) as f:
        rows = f.read().splitlines()
    texts = [json.loads(r)["text"] for r in rows]
    s = h.python_stubs(os.path.join(work, "stubs"))
    (ds, ds_grpc), (jb, jb_grpc), (ad, ad_grpc), (inf, inf_grpc), (ev, ev_grpc) = (
        s[n] for n in ("datasets", "jobs", "adapters", "inference", "evaluations"))
    d = h.Daemon(work, model, extra_args=["--device", "cpu", "--max-resident-adapters", "3", "--import-root", work,
                                          "--promotion-margin", "1"] + args.daemon_arg).start()  # margin 1: the alias may move both ways
    channel = grpc.insecure_channel(d.address)
    datasets, jobs = ds_grpc.DatasetsStub(channel), jb_grpc.JobsStub(channel)
    adapters, infer = ad_grpc.AdaptersStub(channel), inf_grpc.InferenceStub(channel)
    md = d.metadata
    stats = Stats()

    def upload(dataset_id, lines):
        def messages():
            yield ds.UploadDatasetRequest(header=ds.UploadDatasetHeader(dataset_id=dataset_id, format="classification"))
            data = ("\n".join(lines) + "\n").encode()
            for i in range(0, len(data), 16384):
                yield ds.UploadDatasetRequest(chunk=data[i:i + 16384])
        return datasets.UploadDataset(messages(), metadata=md("trainer"), timeout=120)

    try:
        # Set-up (not measured): the hold-out for the CI gate, two evaluated + approved versions
        # behind sentiment:prod, the LRU pool loaded, the training job submitted.
        upload("imdb", rows)
        ids = {n: adapters.ImportAdapter(ad.ImportAdapterRequest(name=n.rsplit("-", 1)[0] if n.startswith("sentiment") else n,
                                                                 path=os.path.join(work, "adapters", n)),
                                         metadata=md("deployer"), timeout=60).adapter_id for n in names}
        versions = [ids["sentiment-1"], ids["sentiment-2"]]
        for a in versions:
            ev_grpc.EvaluationsStub(channel).CreateEvaluation(ev.CreateEvaluationRequest(
                dataset_id="imdb", adapter=a, max_examples=8), metadata=md("trainer"), timeout=300)
            adapters.ApproveAdapter(ad.DecisionRequest(adapter=a, note="soak"), metadata=md("deployer"), timeout=60)
        adapters.PromoteAdapter(ad.PromoteAdapterRequest(adapter=versions[0], alias="sentiment:prod"),
                                metadata=md("deployer"), timeout=60)
        lru = [ids["lru%d" % i] for i in range(6)]
        churn = [ids["churn%d" % i] for i in range(3)]
        for a in lru:
            adapters.LoadAdapter(ad.LoadAdapterRequest(adapter=a), metadata=md("deployer"), timeout=60)
        upload("soak-train", rows[:240])
        job = stats.call("job", lambda: jobs.CreateJob(jb.CreateJobRequest(
            dataset_id="soak-train", adapter_name="soak-job", quantize="nf4", lora=jb.LoraSettings(r=4),
            hyperparameters=jb.Hyperparameters(epochs=1, batch_size=8, max_seq_len=64)), metadata=md("trainer"), timeout=60))
        time.sleep(1.5)  # the gauges refresh every second
        start_gauges = gauges(d)
        start = time.time()
        deadline = start + args.seconds
        stop = threading.Event()

        def generate(kind, adapter, tokens=8):
            prompt = "Review: %s\nThe review is" % rng.choice(texts)
            stats.call(kind, lambda: infer.Generate(inf.GenerateRequest(adapter=adapter, prompt=prompt, raw_prompt=True,
                                                                        max_new_tokens=tokens), metadata=md("inference"), timeout=120))

        def stream_cancel():
            after = rng.randint(1, 8)
            call = infer.GenerateStream(inf.GenerateRequest(adapter=rng.choice(["", "sentiment:prod"]), raw_prompt=True,
                                                            prompt=rng.choice(texts), max_new_tokens=200),
                                        metadata=md("inference"), timeout=120)
            for i, _ in enumerate(call, 1):
                if i >= after:
                    call.cancel()
                    break
            return after

        def bad_rows():
            good = rng.sample(rows, 250)
            bad = ['{"text": "no label here"}', "this line is not JSON", '{"text": 5, "label": "positive"}',
                   '{"text": "x", "label": ["positive"]}']
            for b in rng.sample(bad, rng.randint(1, len(bad))):
                good.insert(rng.randrange(len(good)), b)
            return good

        workers = {
            "generate": lambda: generate("generate", rng.choice(["", "sentiment:prod"])),
            "generate_lru": lambda: generate("generate_lru", rng.choice(lru)),
            "stream": lambda: stats.call("stream_cancel", stream_cancel),
            "classify": lambda: stats.call("classify", lambda: infer.Classify(inf.ClassifyRequest(
                adapter="sentiment:prod", text=rng.choice(texts), labels=["negative", "positive"]), metadata=md("inference"),
                timeout=120)),
        }
        counter = {"alias": 0, "upload": 0}

        def admin_step():
            counter["alias"] += 1
            target = versions[counter["alias"] % 2]
            stats.call("alias_move", lambda: adapters.PromoteAdapter(ad.PromoteAdapterRequest(
                adapter=target, alias="sentiment:prod"), metadata=md("deployer"), timeout=60))
            if counter["alias"] % 3 == 0:
                a = churn[(counter["alias"] // 3) % len(churn)]
                if stats.call("adapter_load", lambda: adapters.LoadAdapter(ad.LoadAdapterRequest(adapter=a),
                                                                           metadata=md("deployer"), timeout=60)):
                    generate("generate_lru", a)
                    stats.call("adapter_unload", lambda: adapters.UnloadAdapter(ad.AdapterRef(adapter=a),
                                                                                metadata=md("deployer"), timeout=60))
            time.sleep(0.5)

        def dataset_step():
            counter["upload"] += 1
            n = counter["upload"]
            if n % 2:
                dataset_id = "soak-bad-%d" % n
                stats.call("upload_bad", lambda: upload(dataset_id, bad_rows()), expect=(grpc.StatusCode.INVALID_ARGUMENT,))
            else:
                dataset_id = "soak-ok-%d" % n
                if stats.call("upload_ok", lambda: upload(dataset_id, rng.sample(rows, 250))):
                    stats.call("dataset_delete", lambda: datasets.DeleteDataset(ds.DeleteDatasetRequest(
                        dataset_id=dataset_id), metadata=md("trainer"), timeout=60))
            time.sleep(2.0)

        workers.update(admin=admin_step, datasets=dataset_step)
        if args.only:
            unknown = set(args.only.split(",")) - set(workers)
            assert not unknown, "unknown --only loops %s (known: %s)" % (sorted(unknown), ", ".join(workers))
            workers = {n: w for n, w in workers.items() if n in args.only.split(",")}

        def loop(step):
            while not stop.is_set() and time.time() < deadline:
                step()

        samples = []

        def sampler():
            while not stop.is_set():
                samples.append((time.time() - start,) + proc_sample(d.proc.pid))
                stop.wait(SAMPLE_S)

        threads = [threading.Thread(target=loop, args=(w,), name=n) for n, w in workers.items()]
        threads.append(threading.Thread(target=sampler, name="sampler"))
        for t in threads:
            t.start()
        job_state, next_report = None, start + 60
        while time.time() < deadline:
            time.sleep(min(5.0, max(0.0, deadline - time.time())))
            if job is not None and (job_state is None or job_state.status not in ("succeeded", "failed", "cancelled")):
                job_state = jobs.GetJob(jb.GetJobRequest(job_id=job.job_id), metadata=md("viewer"), timeout=60)
            if time.time() >= next_report:
                next_report += 60
                done = sum(r["requests"] for r in stats.table().values())
                print("t=%4.0f s: %d requests, %d failures, RSS %d KB, %d FDs, job %s" % (
                    time.time() - start, done, sum(stats.failed.values()), samples[-1][1], samples[-1][2],
                    job_state.status if job_state else "?"), flush=True)
        stop.set()
        for t in threads:
            t.join(timeout=300)
        wall = time.time() - start
        while job is not None and job_state.status not in ("succeeded", "failed", "cancelled") and time.time() < deadline + 600:
            time.sleep(2)
            job_state = jobs.GetJob(jb.GetJobRequest(job_id=job.job_id), metadata=md("viewer"), timeout=60)
        time.sleep(2.0)  # the gauges refresh every second
        end_gauges = gauges(d)
    finally:
        channel.close()
        d.stop()

    warm = [p for p in samples if p[0] >= 0.2 * args.seconds]
    rss_slope = slope_per_min([(p[0], p[1]) for p in warm])
    fd_slope = slope_per_min([(p[0], p[2]) for p in warm])
    table = stats.table()
    idle = {k: v for k, v in end_gauges.items() if re.match(r"qlorad_(kv_cache_blocks_(used|reserved)|inference_requests_running)", k)}
    summary = {
        "seconds": round(wall, 1), "requests": table, "total_requests": sum(r["requests"] for r in table.values()),
        "failures": sum(stats.failed.values()), "failure_examples": stats.examples, "expected_refusal_example": stats.refusals,
        "job": {"status": job_state.status if job_state else None, "adapter_id": job_state.adapter_id if job_state else None,
                "started_at": job_state.started_at if job_state else None,
                "finished_at": job_state.finished_at if job_state else None, "error": job_state.error if job_state else None},
        "rss_kb": {"first": samples[0][1], "after_warmup": warm[0][1] if warm else None, "last": samples[-1][1],
                   "max": max(p[1] for p in samples)},
        "fds": {"first": samples[0][2], "after_warmup": warm[0][2] if warm else None, "last": samples[-1][2]},
        "samples": len(samples), "samples_after_warmup": len(warm),
        "rss_slope_kb_per_min": round(rss_slope, 1), "fd_slope_per_min": round(fd_slope, 3),
        "rss_anon_slope_kb_per_min": round(slope_per_min([(p[0], p[3]) for p in warm]), 1),
        "rss_file_slope_kb_per_min": round(slope_per_min([(p[0], p[4]) for p in warm]), 1),
        "bounds": {"rss_slope_kb_per_min": RSS_BOUND_KB_MIN, "fd_slope_per_min": FD_BOUND_MIN},
        "gauges": {k: {"start": start_gauges.get(k), "end": end_gauges.get(k)} for k in sorted(set(start_gauges) | set(end_gauges))},
    }
    problems = []
    if summary["failures"]:
        problems.append("%d failed requests" % summary["failures"])
    if summary["job"]["status"] != "succeeded":
        problems.append("training job %s" % summary["job"]["status"])
    if not rss_slope <= RSS_BOUND_KB_MIN:  # nan (too few samples) fails too
        problems.append("RSS slope %.1f KB/min > %.0f" % (rss_slope, RSS_BOUND_KB_MIN))
    if not fd_slope <= FD_BOUND_MIN:
        problems.append("FD slope %.3f/min > %.1f" % (fd_slope, FD_BOUND_MIN))
    if any(v != 0 for v in idle.values()) or not idle:
        problems.append("engine not idle after the traffic: %s" % idle)
    summary["problems"] = problems
    print("samples [t s, RSS KB, FDs, RssAnon KB, RssFile KB]: " + json.dumps([[round(p[0])] + list(p[1:]) for p in samples]))
    print(json.dumps(summary, indent=1))
    print("\n| type | requests | ok | expected refusals | failures | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|---:|")
    for kind, r in table.items():
        print("| %s | %d | %d | %d | %d | %.1f | %.1f |" % (kind, r["requests"], r["ok"], r["expected_refusals"], r["failures"],
                                                         r["p50_ms"], r["p99_ms"]))
    print("\n| after warm-up (%d samples, every %.0f s) | slope | bound |\n|---|---:|---:|" % (len(warm), SAMPLE_S))
    print("| RSS (%d → %d KB) | %.1f KB/min | %.0f KB/min |" % (summary["rss_kb"]["after_warmup"] or 0, samples[-1][1], rss_slope,
                                                            RSS_BOUND_KB_MIN))
    print("| open FDs (%d → %d) | %.3f /min | %.1f /min |" % (summary["fds"]["after_warmup"] or 0, samples[-1][2], fd_slope,
                                                            FD_BOUND_MIN))
    print("\n| gauge | start | end |\n|---|---:|---:|")
    for k, v in summary["gauges"].items():
        print("| `%s` | %s | %s |" % (k, "%g" % v["start"] if v["start"] is not None else "—",
                                       "%g" % v["end"] if v["end"] is not None else "—"))
    print("\nsoak %s: %s" % ("FAILED" if problems else "passed", "; ".join(problems) or "no failures, slopes within bounds"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
