#!/usr/bin/python3
"""Static checks of deploy/ (issue 10), run by ctest (tests/deploy/CMakeLists.txt).

  check_deploy.py dashboard      Grafana JSON: parses, stable uid, every panel has
                                 targets with a PromQL expr, unique ids, the
                                 datasource uid matches the provisioning YAML.
  check_deploy.py metric-names   Every qlorad_* name used by the dashboard and the
                                 alert rules is listed in deploy/METRICS.md, and
                                 the listed names follow design.md section 4.
  check_deploy.py yaml           compose, k8s, provisioning and Prometheus files are
                                 well-formed YAML with the fields deployment needs.
Uses Debian's /usr/bin/python3 with python3-yaml (deploy/setup.sh).
"""
import json
import os
import re
import sys

import yaml

ROOT = os.environ.get("QLORAD_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
DASHBOARD = os.path.join(DEPLOY, "grafana", "qlorad-dashboard.json")
EXPECTED_UID = "qlorad-overview"
NAME_RE = re.compile(r"\bqlorad_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


class CheckError(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise CheckError(msg)


def load_yaml_docs(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    need(docs, f"{path}: no YAML documents")
    return docs


def dashboard_queries(dash):
    """(where, PromQL) for every target and templating query."""
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((f"panel {p.get('id')} '{p.get('title')}' ref {t.get('refId')}", t.get("expr", "")))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query", "")
        if v.get("type") == "query":
            out.append((f"variable ${v['name']}", q or ""))
    return out


def check_dashboard():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    need(dash.get("uid") == EXPECTED_UID, f"dashboard uid is {dash.get('uid')!r}, expected the stable {EXPECTED_UID!r}")
    need(dash.get("title"), "dashboard has no title")
    panels = dash.get("panels")
    need(isinstance(panels, list) and panels, "dashboard has no panels")
    ids = [p.get("id") for p in panels]
    need(len(ids) == len(set(ids)) and None not in ids, f"panel ids missing or not unique: {ids}")
    graphs = [p for p in panels if p.get("type") != "row"]
    for p in graphs:
        where = f"panel {p.get('id')} '{p.get('title')}'"
        need(p.get("title"), f"{where}: no title")
        need(isinstance(p.get("gridPos"), dict) and {"h", "w", "x", "y"} <= set(p["gridPos"]), f"{where}: bad gridPos")
        targets = p.get("targets")
        need(isinstance(targets, list) and targets, f"{where}: no targets")
        refs = [t.get("refId") for t in targets]
        need(len(refs) == len(set(refs)), f"{where}: duplicate refIds {refs}")
        for t in targets:
            need(isinstance(t.get("expr"), str) and NAME_RE.search(t["expr"]), f"{where}: target {t.get('refId')} has no qlorad_* expr")
            need(t["expr"].count("(") == t["expr"].count(")"), f"{where}: unbalanced parentheses in {t['expr']}")
    # Sections the issue asks for.
    titles = " | ".join(p.get("title", "") for p in panels).lower()
    for section in ("traffic", "latency", "adapters", "training", "drift"):
        need(section in titles, f"dashboard has no '{section}' section")
    for words in (("p50", "p99"), ("loss",), ("learning rate",), ("tokens/s",), ("eta",), ("step",)):
        need(all(w in titles for w in words), f"dashboard has no panel mentioning {words}")
    # The datasource the panels default to is the provisioned one.
    ds_var = [v for v in dash["templating"]["list"] if v.get("type") == "datasource"]
    need(ds_var, "dashboard has no datasource variable")
    prov = load_yaml_docs(os.path.join(DEPLOY, "grafana", "provisioning", "datasources", "prometheus.yaml"))[0]
    uids = {d["uid"] for d in prov["datasources"]}
    need(ds_var[0]["current"]["value"] in uids, f"datasource variable default {ds_var[0]['current']} not provisioned ({uids})")
    print(f"dashboard: uid {dash['uid']}, {len(graphs)} panels, {sum(len(p['targets']) for p in graphs)} queries OK")


def documented_metrics():
    """{name: type} from the table rows of deploy/METRICS.md."""
    metrics = {}
    with open(os.path.join(DEPLOY, "METRICS.md")) as f:
        for line in f:
            m = re.match(r"\|\s*`(qlorad_[a-z0-9_]+)`\s*\|\s*(counter|gauge|histogram)\s*\|", line)
            if m:
                need(m.group(1) not in metrics, f"METRICS.md lists {m.group(1)} twice")
                metrics[m.group(1)] = m.group(2)
    need(len(metrics) > 20, f"METRICS.md table parsed to only {len(metrics)} metrics")
    return metrics


def undocumented(names, metrics):
    bad = []
    for n in sorted(set(names)):
        if n in metrics and metrics[n] != "histogram":
            continue
        base = next((n[: -len(s)] for s in HISTOGRAM_SUFFIXES if n.endswith(s)), None)
        if base is not None and metrics.get(base) == "histogram":
            continue
        bad.append(n)  # unknown, or a bare histogram name (needs _bucket/_sum/_count)
    return bad


def exposition(metrics):
    """A text-format 0.0.4 exposition with one sample per documented metric."""
    lines = []
    for name, kind in sorted(metrics.items()):
        lines.append(f"# HELP {name} Documented in deploy/METRICS.md.")
        lines.append(f"# TYPE {name} {kind}")
        if kind == "histogram":
            lines += [f'{name}_bucket{{le="1"}} 1', f'{name}_bucket{{le="+Inf"}} 2',
                      f"{name}_sum 3", f"{name}_count 2"]
        else:
            lines.append(f"{name} 1")
    return "\n".join(lines) + "\n"


def lint_with_promtool(metrics):
    """`promtool check metrics` on an exposition of the documented names: the
    contract itself passes Prometheus's naming lint (the daemon's live
    /metrics is checked the same way once it exists)."""
    import subprocess
    promtool = "/usr/bin/promtool"
    need(os.path.exists(promtool), "promtool not found (Debian package prometheus, deploy/setup.sh)")
    r = subprocess.run([promtool, "check", "metrics"], input=exposition(metrics), text=True,
                       capture_output=True)
    need(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
         f"promtool check metrics on the documented names: rc={r.returncode} {r.stdout}{r.stderr}")
    bad = dict(metrics)
    bad["qlorad_bad_gauge_total"] = "gauge"
    r = subprocess.run([promtool, "check", "metrics"], input=exposition(bad), text=True, capture_output=True)
    need(r.returncode != 0 or r.stdout.strip() or r.stderr.strip(), "promtool lint did not flag a gauge named *_total")


def check_metric_names():
    metrics = documented_metrics()
    for name, kind in metrics.items():
        need(":" not in name, f"{name}: colons are reserved for recording rules")
        need(name.endswith("_total") == (kind == "counter"), f"{name}: counters (and only counters) end in _total")
        need(not name.endswith(HISTOGRAM_SUFFIXES), f"{name}: reserved histogram suffix")
        need(not re.search(r"_(milliseconds|ms|kb|mb|gb|percent)$", name), f"{name}: not a base unit")
    # The checker itself rejects what it should (guards against a vacuous pass).
    need(undocumented(["qlorad_made_up_total", "qlorad_inference_e2e_latency_seconds",
                       "qlorad_build_info_bucket"], metrics) ==
         ["qlorad_build_info_bucket", "qlorad_inference_e2e_latency_seconds", "qlorad_made_up_total"],
         "metric-name checker does not reject unknown names")
    lint_with_promtool(metrics)
    with open(DASHBOARD) as f:
        dash = json.load(f)
    used = {}
    for where, q in dashboard_queries(dash):
        for n in NAME_RE.findall(q):
            used.setdefault(n, where)
    rules = load_yaml_docs(os.path.join(DEPLOY, "prometheus", "alerts.yml"))[0]
    for g in rules["groups"]:
        for r in g["rules"]:
            for n in NAME_RE.findall(r["expr"]):
                used.setdefault(n, f"alert {r.get('alert')}")
    bad = undocumented(used, metrics)
    need(not bad, "names not in deploy/METRICS.md: " + ", ".join(f"{n} ({used[n]})" for n in bad))
    unused = sorted(set(metrics) - {n if n in metrics else re.sub(r"_(bucket|sum|count)$", "", n) for n in used})
    print(f"metric names: promtool lint clean; {len(used)} used by dashboard + alerts, all documented "
          f"({len(metrics)} documented; not on the dashboard: {', '.join(unused) or 'none'})")


def check_yaml():
    # Prometheus files and the promtool test (promtool checks semantics too).
    for rel in ("prometheus/prometheus.yml", "prometheus/prometheus-compose.yml",
                "prometheus/alerts.yml", "prometheus/alerts_test.yml"):
        load_yaml_docs(os.path.join(DEPLOY, rel))
    # Grafana provisioning.
    dash_prov = load_yaml_docs(os.path.join(DEPLOY, "grafana", "provisioning", "dashboards", "qlorad.yaml"))[0]
    need(dash_prov.get("apiVersion") == 1 and dash_prov["providers"][0]["type"] == "file", "dashboards provisioning: need apiVersion 1 and a file provider")
    ds_prov = load_yaml_docs(os.path.join(DEPLOY, "grafana", "provisioning", "datasources", "prometheus.yaml"))[0]
    need(ds_prov.get("apiVersion") == 1 and ds_prov["datasources"][0]["type"] == "prometheus", "datasource provisioning: need a prometheus datasource")
    # docker-compose: the three services, and every local file it mounts exists.
    compose = load_yaml_docs(os.path.join(DEPLOY, "docker-compose.yml"))[0]
    need({"qlorad", "prometheus", "grafana"} <= set(compose.get("services", {})), "compose: needs qlorad, prometheus and grafana services")
    for svc_name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                need(os.path.exists(os.path.join(DEPLOY, src)), f"compose {svc_name}: mounts missing {src}")
        build = svc.get("build")
        if build:
            need(os.path.exists(os.path.join(DEPLOY, build["context"], build["dockerfile"])), f"compose {svc_name}: no {build['dockerfile']}")
    mounted = [v for v in compose["services"]["grafana"]["volumes"] if "qlorad-dashboard.json" in v]
    need(mounted and mounted[0].split(":")[1].startswith(dash_prov["providers"][0]["options"]["path"]),
         "compose: the dashboard is not mounted under the provisioned dashboards path")
    # Kubernetes manifests.
    kinds = {}
    k8s_dir = os.path.join(DEPLOY, "k8s")
    for fn in sorted(os.listdir(k8s_dir)):
        if not fn.endswith((".yaml", ".yml")):
            continue
        for doc in load_yaml_docs(os.path.join(k8s_dir, fn)):
            for key in ("apiVersion", "kind", "metadata"):
                need(key in doc, f"k8s/{fn}: a document has no {key}")
            need(doc["metadata"].get("name"), f"k8s/{fn}: {doc['kind']} has no metadata.name")
            kinds.setdefault(doc["kind"], []).append(doc)
    for kind in ("StatefulSet", "Service", "ConfigMap"):
        need(kind in kinds, f"k8s: no {kind}")
    sts = kinds["StatefulSet"][0]
    spec = sts["spec"]
    need(spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(), "k8s: StatefulSet selector does not match its pod labels")
    need(spec["serviceName"] in {s["metadata"]["name"] for s in kinds["Service"]}, "k8s: StatefulSet serviceName is not a Service")
    c = spec["template"]["spec"]["containers"][0]
    need(str(c["resources"]["requests"].get("nvidia.com/gpu")) == "1" and str(c["resources"]["limits"].get("nvidia.com/gpu")) == "1", "k8s: container must request and limit nvidia.com/gpu")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        need(c.get(probe, {}).get("grpc", {}).get("port") == ports["grpc"], f"k8s: {probe} must use grpc health on the grpc port")
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    need(mounts.get("state") == "/var/lib/qlorad" and "state" in claims, "k8s: state dir must be a PVC (volumeClaimTemplates) mounted at /var/lib/qlorad")
    cm_names = {cm["metadata"]["name"] for cm in kinds["ConfigMap"]}
    need(all(e["configMapRef"]["name"] in cm_names for e in c.get("envFrom", []) if "configMapRef" in e), "k8s: envFrom names a missing ConfigMap")
    for svc in kinds["Service"]:
        need(svc["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items(), f"k8s: Service {svc['metadata']['name']} selects no qlorad pod")
    print(f"yaml: compose, provisioning, prometheus and k8s ({', '.join(sorted(kinds))}) OK")


def main():
    checks = {"dashboard": check_dashboard, "metric-names": check_metric_names, "yaml": check_yaml}
    if len(sys.argv) != 2 or sys.argv[1] not in checks:
        sys.exit(f"usage: check_deploy.py {{{'|'.join(checks)}}}")
    try:
        checks[sys.argv[1]]()
    except CheckError as e:
        sys.exit(f"FAIL: {e}")


if __name__ == "__main__":
    main()
