#!/usr/bin/python3
"""Runs every Grafana dashboard query against a real Prometheus server.

Default mode (ctest deploy_dashboard_queries): starts Debian's `prometheus` on
loopback in a temp dir with the scrape job of deploy/prometheus/prometheus.yml
(job "qlorad", /metrics) and the rules of alerts.yml, pointed at a STAND-IN
exporter that serves one series per metric of deploy/METRICS.md with the
documented labels (counters and histogram buckets growing every scrape). It
then checks that Prometheus scraped the target (up == 1), loaded every alert
rule, and that every dashboard query (template variables substituted) returns
data. This proves the dashboard's PromQL and the metric contract fit together;
the stand-in is not the daemon (issue 8) -- when it exists, run
  dashboard_queries_test.py --prometheus http://127.0.0.1:9090
against a Prometheus that scrapes the real daemon.
"""
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(__file__))
import check_deploy  # noqa: E402

LABEL_VALUES = {
    "service": ["qlorad.v1.Inference"], "method": ["Generate"], "code": ["OK", "INTERNAL"],
    "adapter": ["support", "other"], "feature": ["prompt_length"], "tier": ["device", "disk"], "kind": ["weights", "kv_cache"],
    "device": ["cuda:0"], "status": ["running", "failed"], "job_id": ["job-1"],
    "version": ["0.1.0"], "git_commit": ["abc123"], "torch_version": ["1.13.0"], "cuda": ["false"],
}
BUCKETS = ["0.1", "1", "10", "+Inf"]


def documented_labels():
    """{name: (type, [labels])} from the METRICS.md table."""
    out = {}
    with open(os.path.join(check_deploy.DEPLOY, "METRICS.md")) as f:
        for line in f:
            m = re.match(r"\|\s*`(qlorad_[a-z0-9_]+)`\s*\|\s*(counter|gauge|histogram)\s*\|([^|]*)\|", line)
            if m:
                out[m.group(1)] = (m.group(2), re.findall(r"`([a-z_]+)`", m.group(3)))
    return out


def label_sets(labels):
    sets = [{}]
    for label in labels:
        sets = [dict(s, **{label: v}) for s in sets for v in LABEL_VALUES[label]]
    return sets


def fmt(labels):
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""


def exposition(metrics, tick):
    lines = []
    for name, (kind, labels) in sorted(metrics.items()):
        lines += [f"# HELP {name} stand-in for deploy/METRICS.md", f"# TYPE {name} {kind}"]
        for ls in label_sets(labels):
            if kind == "counter":
                lines.append(f"{name}{fmt(ls)} {10 * tick}")
            elif kind == "gauge":
                lines.append(f"{name}{fmt(ls)} {1 + tick % 2}")
            else:
                for i, le in enumerate(BUCKETS):
                    lines.append(f"{name}_bucket{fmt(dict(ls, le=le))} {(i + 1) * 5 * tick}")
                lines.append(f"{name}_sum{fmt(ls)} {7 * tick}")
                lines.append(f"{name}_count{fmt(ls)} {20 * tick}")
    return "\n".join(lines) + "\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_exporter(metrics):
    tick = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/metrics":
                self.send_error(404)
                return
            tick[0] += 1
            body = exposition(metrics, tick[0]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def query(base, expr):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise check_deploy.CheckError(f"query failed: {expr}: {body}")
    return body["data"]["result"]


def substitute(expr):
    return (expr.replace("$__rate_interval", "10s").replace('"$instance"', '".*"')
            .replace('"$adapter"', '".*"'))


def check_queries(base, deadline):
    with open(check_deploy.DASHBOARD) as f:
        dash = json.load(f)
    queries = [(w, substitute(q)) for w, q in check_deploy.dashboard_queries(dash) if not q.startswith("label_values")]
    missing = queries
    while True:
        missing = [(w, q) for w, q in missing if not query(base, q)]
        if not missing or time.time() > deadline:
            break
        time.sleep(1)
    check_deploy.need(not missing, "dashboard queries without data:\n  " + "\n  ".join(f"{w}: {q}" for w, q in missing))
    # label_values() variables: the label exists on the named metric.
    for v in dash["templating"]["list"]:
        if v.get("type") == "query":
            m = re.match(r"label_values\((\w+),\s*(\w+)\)", v["query"]["query"])
            check_deploy.need(m, f"variable {v['name']}: unsupported query {v['query']}")
            res = query(base, f"count by ({m.group(2)}) ({m.group(1)})")
            check_deploy.need(res and all(m.group(2) in r["metric"] for r in res), f"variable {v['name']}: no values")
    return len(queries)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--prometheus":
        n = check_queries(sys.argv[2].rstrip("/"), time.time() + 60)
        print(f"dashboard queries: all {n} return data from {sys.argv[2]}")
        return
    prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
    check_deploy.need(os.path.exists(prometheus), "prometheus server not found (Debian package prometheus)")
    metrics = documented_labels()
    exporter = start_exporter(metrics)
    tmp = tempfile.mkdtemp(prefix="qlorad-prom-")
    proc = None
    try:
        with open(os.path.join(check_deploy.DEPLOY, "prometheus", "prometheus.yml")) as f:
            cfg = yaml.safe_load(f)
        cfg["global"]["scrape_interval"] = "1s"
        cfg["global"]["evaluation_interval"] = "1s"
        cfg["rule_files"] = [os.path.join(check_deploy.DEPLOY, "prometheus", "alerts.yml")]
        job = [j for j in cfg["scrape_configs"] if j["job_name"] == "qlorad"][0]
        job["static_configs"][0]["targets"] = [f"127.0.0.1:{exporter.server_address[1]}"]
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            yaml.safe_dump(cfg, f)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = open(os.path.join(tmp, "prometheus.log"), "w")
        proc = subprocess.Popen([prometheus, f"--config.file={tmp}/prometheus.yml",
                                 f"--storage.tsdb.path={tmp}/data", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            try:
                if query(base, 'up{job="qlorad"} == 1'):
                    break
            except OSError:
                pass
            check_deploy.need(proc.poll() is None, f"prometheus exited: {open(log.name).read()[-2000:]}")
            check_deploy.need(time.time() < deadline, "prometheus never scraped the target")
            time.sleep(0.5)
        with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=10) as r:
            groups = json.load(r)["data"]["groups"]
        n_rules = sum(len(g["rules"]) for g in groups)
        with open(os.path.join(check_deploy.DEPLOY, "prometheus", "alerts.yml")) as f:
            want = sum(len(g["rules"]) for g in yaml.safe_load(f)["groups"])
        check_deploy.need(n_rules == want, f"prometheus loaded {n_rules} rules, alerts.yml has {want}")
        n = check_queries(base, time.time() + 45)
        print(f"dashboard queries: all {n} return data; {n_rules} alert rules loaded; "
              f"scrape of the stand-in exporter ({len(metrics)} documented metrics) OK")
    except check_deploy.CheckError as e:
        sys.exit(f"FAIL: {e}")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        exporter.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
