#!/usr/bin/python3
"""Kubernetes API schema check of deploy/k8s (issue 20), run by ctest (tests/deploy/CMakeLists.txt).

  check_k8s_schema.py              every document of deploy/k8s/**/*.yaml against the API schema
  check_k8s_schema.py --self-test  the checker rejects broken documents and accepts a good one

The schema is Debian's python3-kubernetes (deploy/setup.sh): the client's models are
generated from the Kubernetes OpenAPI spec (package 22.6: API 1.22). apiVersion/kind pick
the model class (apps/v1 StatefulSet -> V1StatefulSet), and the document is walked strictly:
  * every key must be in the model's attribute_map: an unknown field is an error naming the
    file, the document's kind/name and the JSON path;
  * every value must match the model's openapi_types: str, int (not a bool), bool, float,
    datetime, dict(str, T), list[T] and nested models. `object` fields that are IntOrString in
    the API take an int or a string. resource.Quantity fields, typed str by the client, take
    a number or a string in Kubernetes' quantity syntax (24Gi, 500m, 1e3; not 24GB);
  * the models are then constructed from the walked values, so the package's own
    client-side validation runs: a required field that is missing (a container without
    name, a Service port without port) raises its ValueError.
YAML null counts as absent, as the API server treats it.

Fields newer than the package's API version are listed in NEWER_FIELDS with the release that
brought them and checked against hand-written definitions (EXTRA_MODELS) by the same strict
walk; any other unknown field fails. With a newer python3-kubernetes that has them, the
package's own models are used instead. kubeflow.org/v1 PyTorchJob is a CRD of the Kubeflow
training operator, not in the package: its fields are checked against a hand-written subset
of the operator's schema, and its pod templates are V1PodTemplateSpec (package models).
"""
import datetime
import os
import re
import sys

import yaml

try:
    import kubernetes
    import kubernetes.client as k8s
except ImportError:  # not a silent pass
    sys.exit("FAIL: python3-kubernetes is not installed (Debian package python3-kubernetes, deploy/setup.sh)")

ROOT = os.environ.get("QLORAD_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
K8S_DIR = os.path.join(ROOT, "deploy", "k8s")

# (apiVersion, kind) -> model class of the package, or a hand-written model (CRDs).
KINDS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("v1", "Pod"): "V1Pod",
    ("apps/v1", "StatefulSet"): "V1StatefulSet",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("batch/v1", "Job"): "V1Job",
    ("batch/v1", "CronJob"): "V1CronJob",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
    ("networking.k8s.io/v1", "Ingress"): "V1Ingress",
    ("kubeflow.org/v1", "PyTorchJob"): "XPyTorchJob",
}
CRD_NOTES = {
    "XPyTorchJob": "CRD of the Kubeflow training operator (not in python3-kubernetes): checked against "
                   "a hand-written subset of its schema; pod templates against V1PodTemplateSpec",
}

# IntOrString fields (the client types them `object`).
INT_OR_STRING = {
    ("V1HTTPGetAction", "port"), ("V1TCPSocketAction", "port"), ("V1ServicePort", "target_port"),
    ("V1NetworkPolicyPort", "port"), ("V1PodDisruptionBudgetSpec", "max_unavailable"),
    ("V1PodDisruptionBudgetSpec", "min_available"), ("V1RollingUpdateDeployment", "max_surge"),
    ("V1RollingUpdateDeployment", "max_unavailable"), ("V1RollingUpdateDaemonSet", "max_surge"),
    ("V1RollingUpdateDaemonSet", "max_unavailable"),
}
# resource.Quantity fields (the client types them str, or dict(str, str) for resource lists).
QUANTITY = {
    ("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
    ("V1EmptyDirVolumeSource", "size_limit"), ("V1PodSpec", "overhead"),
    ("V1ResourceFieldSelector", "divisor"), ("V1PersistentVolumeSpec", "capacity"),
    ("V1PersistentVolumeClaimStatus", "capacity"),
}
# Kubernetes' quantity grammar: a signed decimal, then a binary-SI, decimal-SI or exponent suffix.
QUANTITY_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")

# Fields the manifests use that are newer than API 1.22: (model, JSON key) -> (type, since).
NEWER_FIELDS = {
    ("V1Probe", "grpc"): ("XGRPCAction", "gRPC probes: Kubernetes 1.24 beta, GA 1.27"),
    ("V1JobSpec", "podFailurePolicy"): ("XPodFailurePolicy", "Job pod failure policy: 1.26 beta, GA 1.31"),
}
# Hand-written models: name -> {JSON key: (type, required)}. Types as in openapi_types, plus
# enum(A|B) and any.
EXTRA_MODELS = {
    # k8s.io/api/core/v1 GRPCAction
    "XGRPCAction": {"port": ("int", True), "service": ("str", False)},
    # k8s.io/api/batch/v1 PodFailurePolicy and its rules
    "XPodFailurePolicy": {"rules": ("list[XPodFailurePolicyRule]", True)},
    "XPodFailurePolicyRule": {
        "action": ("enum(FailJob|FailIndex|Ignore|Count)", True),
        "onExitCodes": ("XPodFailurePolicyOnExitCodesRequirement", False),
        "onPodConditions": ("list[XPodFailurePolicyOnPodConditionsPattern]", False),
    },
    "XPodFailurePolicyOnExitCodesRequirement": {
        "containerName": ("str", False), "operator": ("enum(In|NotIn)", True), "values": ("list[int]", True)},
    "XPodFailurePolicyOnPodConditionsPattern": {"type": ("str", True), "status": ("enum(True|False|Unknown)", False)},
    # kubeflow.org/v1 PyTorchJob (training-operator pkg/apis/kubeflow.org/v1)
    "XPyTorchJob": {"apiVersion": ("str", True), "kind": ("str", True), "metadata": ("V1ObjectMeta", True),
                    "spec": ("XPyTorchJobSpec", True), "status": ("any", False)},
    "XPyTorchJobSpec": {"runPolicy": ("XRunPolicy", False), "elasticPolicy": ("any", False),
                        "pytorchReplicaSpecs": ("dict(enum(Master|Worker), XReplicaSpec)", True),
                        "nprocPerNode": ("str", False)},
    "XRunPolicy": {"cleanPodPolicy": ("enum(All|Running|None)", False), "ttlSecondsAfterFinished": ("int", False),
                   "activeDeadlineSeconds": ("int", False), "backoffLimit": ("int", False),
                   "schedulingPolicy": ("any", False), "suspend": ("bool", False), "managedBy": ("str", False)},
    "XReplicaSpec": {"replicas": ("int", False), "template": ("V1PodTemplateSpec", True),
                     "restartPolicy": ("enum(Always|OnFailure|Never|ExitCode)", False)},
}


def _exactly_one_of(*keys):
    def check(obj):
        given = [k for k in keys if obj.get(k) is not None]
        return None if len(given) == 1 else f"exactly one of {', '.join(keys)} must be set (got {given or 'none'})"
    return check


EXTRA_RULES = {"XPodFailurePolicyRule": _exactly_one_of("onExitCodes", "onPodConditions")}

LIST_RE = re.compile(r"^list\[(.+)\]$")
DICT_RE = re.compile(r"^dict\(([^,]+), (.+)\)$")
ENUM_RE = re.compile(r"^enum\((.+)\)$")
INVALID = object()  # a subtree that already reported its error


def describe(value):
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__


def key_path(path, key):
    if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
        return f"{path}.{key}" if path else key
    return f'{path}["{key}"]'


class Walker:
    def __init__(self):
        self.errors = []  # (JSON path, message)
        self.newer_used = {}  # (model, key) -> count

    def fail(self, path, message):
        self.errors.append((path or "(document)", message))
        return INVALID

    def walk(self, value, tname, path, field=None):
        """The value as the package would hold it (models constructed), or INVALID."""
        if tname == "any":
            return value
        m = LIST_RE.match(tname)
        if m:
            if not isinstance(value, list):
                return self.fail(path, f"expected a list ({tname}), got {describe(value)}")
            out = [self.walk(v, m.group(1), f"{path}[{i}]", field) for i, v in enumerate(value)]
            return INVALID if any(o is INVALID for o in out) else out
        m = DICT_RE.match(tname)
        if m:
            if not isinstance(value, dict):
                return self.fail(path, f"expected a map ({tname}), got {describe(value)}")
            out, bad = {}, False
            for k, v in value.items():
                sub = key_path(path, str(k))
                if not isinstance(k, str):
                    bad = self.fail(sub, f"map keys must be strings, got {describe(k)}") or True
                    continue
                enum = ENUM_RE.match(m.group(1))
                if enum and k not in enum.group(1).split("|"):
                    bad = self.fail(sub, f"key {k!r} is not one of {enum.group(1).replace('|', ', ')}") or True
                    continue
                out[k] = self.walk(v, m.group(2), sub, field)
                bad = bad or out[k] is INVALID
            return INVALID if bad else out
        m = ENUM_RE.match(tname)
        if m:
            allowed = m.group(1).split("|")
            if not isinstance(value, str) or value not in allowed:
                return self.fail(path, f"expected one of {', '.join(allowed)}, got {describe(value)}")
            return value
        if tname in ("str", "int", "float", "bool", "datetime", "date", "object"):
            return self.primitive(value, tname, path, field)
        if tname in EXTRA_MODELS:
            return self.extra_model(value, tname, path)
        cls = getattr(k8s, tname, None)
        if cls is None:
            raise RuntimeError(f"checker bug: no model {tname} in kubernetes.client")
        return self.model(value, cls, path)

    def primitive(self, value, tname, path, field):
        if field in QUANTITY and tname == "str":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)) or \
                    (isinstance(value, str) and not QUANTITY_RE.match(value)):
                return self.fail(path, f"expected a resource quantity (e.g. 24Gi, 500m, 2), got {describe(value)}")
            return str(value)
        if tname == "object":
            if field in INT_OR_STRING and (isinstance(value, bool) or not isinstance(value, (int, str))):
                return self.fail(path, f"expected an int or a string (IntOrString), got {describe(value)}")
            return value
        ok = {
            "str": lambda v: isinstance(v, str),
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "bool": lambda v: isinstance(v, bool),
            "datetime": lambda v: isinstance(v, (str, datetime.date)),
            "date": lambda v: isinstance(v, (str, datetime.date)),
        }[tname](value)
        if not ok:
            hint = " (quote it: the API takes a string)" if tname == "str" and isinstance(value, (int, float, bool)) else ""
            return self.fail(path, f"expected {tname}, got {describe(value)}{hint}")
        return value

    def model(self, value, cls, path):
        if not isinstance(value, dict):
            return self.fail(path, f"expected an object ({cls.__name__}), got {describe(value)}")
        json_to_attr = {j: a for a, j in cls.attribute_map.items()}
        kwargs, bad = {}, False
        for key, v in value.items():
            sub = key_path(path, str(key))
            if v is None:
                continue  # null = absent
            if key in json_to_attr:
                attr = json_to_attr[key]
                walked = self.walk(v, cls.openapi_types[attr], sub, (cls.__name__, attr))
                if walked is INVALID:
                    bad = True
                else:
                    kwargs[attr] = walked
            elif (cls.__name__, key) in NEWER_FIELDS:
                tname, _ = NEWER_FIELDS[(cls.__name__, key)]
                self.newer_used[(cls.__name__, key)] = self.newer_used.get((cls.__name__, key), 0) + 1
                bad = self.walk(v, tname, sub) is INVALID or bad
            else:
                self.fail(sub, f"unknown field {key!r} ({cls.__name__} has: {', '.join(sorted(json_to_attr))})")
                bad = True
        if bad:
            return INVALID
        try:
            return cls(**kwargs)  # the package's client-side validation: required fields
        except (ValueError, TypeError) as e:
            return self.fail(path, f"{cls.__name__}: {e}")

    def extra_model(self, value, name, path):
        fields = EXTRA_MODELS[name]
        if not isinstance(value, dict):
            return self.fail(path, f"expected an object ({name[1:]}), got {describe(value)}")
        out, bad = {}, False
        for key, v in value.items():
            sub = key_path(path, str(key))
            if v is None:
                continue
            if key not in fields:
                self.fail(sub, f"unknown field {key!r} ({name[1:]} has: {', '.join(sorted(fields))})")
                bad = True
                continue
            out[key] = self.walk(v, fields[key][0], sub)
            bad = bad or out[key] is INVALID
        for key, (_, required) in fields.items():
            if required and value.get(key) is None:
                self.fail(key_path(path, key), f"{name[1:]}: required field {key!r} is missing")
                bad = True
        rule = EXTRA_RULES.get(name)
        if not bad and rule and rule(value):
            return self.fail(path, f"{name[1:]}: {rule(value)}")
        return INVALID if bad else out


def check_document(doc):
    """(model name, Walker) for one document; the errors are in walker.errors."""
    walker = Walker()
    if not isinstance(doc, dict):
        walker.fail("", f"a document must be an object, got {describe(doc)}")
        return None, walker
    model = KINDS.get((doc.get("apiVersion"), doc.get("kind")))
    if model is None:
        walker.fail("", f"apiVersion {doc.get('apiVersion')!r} kind {doc.get('kind')!r} is not known to this checker "
                        f"(known: {', '.join(f'{a} {k}' for a, k in sorted(KINDS))})")
        return None, walker
    walker.walk(doc, model, "")
    return model, walker


def manifest_files():
    out = []
    for directory, _, files in os.walk(K8S_DIR):
        out += [os.path.join(directory, f) for f in files if f.endswith((".yaml", ".yml"))]
    return sorted(out)


def check_manifests():
    failures, documents, newer, notes = [], 0, {}, set()
    for path in manifest_files():
        rel = os.path.relpath(path, ROOT)
        with open(path) as f:
            try:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
            except yaml.YAMLError as e:
                failures.append(f"{rel}: not YAML: {e}")
                continue
        for doc in docs:
            documents += 1
            model, walker = check_document(doc)
            name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}" if isinstance(doc, dict) else "?"
            for where, message in walker.errors:
                failures.append(f"{rel}: {name}: {where}: {message}")
            for key, n in walker.newer_used.items():
                newer[key] = newer.get(key, 0) + n
            if not walker.errors:
                print(f"{rel}: {doc['apiVersion']} {name}: OK ({model.lstrip('X')})")
            if model in CRD_NOTES:
                notes.add(f"{doc['apiVersion']} {doc['kind']}: {CRD_NOTES[model]}")
    if documents == 0:
        failures.append(f"no documents under {K8S_DIR}")
    print(f"schema: python3-kubernetes {kubernetes.__version__}; {documents} documents")
    for (model, key), n in sorted(newer.items()):
        print(f"  newer than the package's schema, checked against a hand-written definition: "
              f"{model}.{key} x{n} ({NEWER_FIELDS[(model, key)][1]})")
    for note in sorted(notes):
        print(f"  {note}")
    if failures:
        print("\n".join(f"FAIL: {f}" for f in failures), file=sys.stderr)
        return 1
    print("k8s schema: every document conforms")
    return 0


# --self-test: documents the checker must reject (with an error at the given path,
# containing the given text) or accept (None).
def _deployment(container, **spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "t", "labels": {"app": "t"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "t"}},
                     "template": {"metadata": {"labels": {"app": "t"}}, "spec": {"containers": [container]}}, **spec}}


GOOD_CONTAINER = {"name": "c", "image": "busybox", "env": [{"name": "N", "value": "2"}],
                  "ports": [{"name": "grpc", "containerPort": 50051}],
                  "resources": {"requests": {"cpu": "500m", "memory": "24Gi", "nvidia.com/gpu": 1}},
                  "livenessProbe": {"grpc": {"port": 50051}}, "readinessProbe": {"httpGet": {"path": "/", "port": "grpc"}}}


def _with(container, **changes):
    out = dict(container)
    out.update(changes)
    return out


def _job(**spec):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}, **spec}}


def _pytorchjob(replica_type, container):
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "p"},
            "spec": {"pytorchReplicaSpecs": {replica_type: {"replicas": 1, "restartPolicy": "OnFailure",
                                                            "template": {"spec": {"containers": [container]}}}}}}


SELF_TESTS = [
    ("a good Deployment", _deployment(GOOD_CONTAINER), None, None),
    ("unknown container field", _deployment(_with(GOOD_CONTAINER, imagePullPolicyy="Always")),
     "spec.template.spec.containers[0].imagePullPolicyy", "unknown field"),
    ("misspelled top-level spec field", _deployment(GOOD_CONTAINER, replica=2), "spec.replica", "unknown field"),
    ("replicas as a string", _deployment(GOOD_CONTAINER, replicas="2"), "spec.replicas", "expected int"),
    ("env value as a number", _deployment(_with(GOOD_CONTAINER, env=[{"name": "WORLD_SIZE", "value": 2}])),
     "spec.template.spec.containers[0].env[0].value", "expected str"),
    ("container without name (package validation)", _deployment({"image": "busybox"}),
     "spec.template.spec.containers[0]", "`name`, must not be `None`"),
    ("Service port without port (package validation)",
     {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"name": "grpc"}]}},
     "spec.ports[0]", "`port`, must not be `None`"),
    ("label value as a bool", _deployment(GOOD_CONTAINER) | {"metadata": {"name": "t", "labels": {"on": True}}},
     "metadata.labels.on", "expected str"),
    ("quantity 24GB", _deployment(_with(GOOD_CONTAINER, resources={"limits": {"memory": "24GB"}})),
     "spec.template.spec.containers[0].resources.limits.memory", "resource quantity"),
    ("IntOrString port as a list", _deployment(_with(GOOD_CONTAINER, readinessProbe={"tcpSocket": {"port": [1]}})),
     "spec.template.spec.containers[0].readinessProbe.tcpSocket.port", "IntOrString"),
    ("gRPC probe port by name (GRPCAction.port is an int)",
     _deployment(_with(GOOD_CONTAINER, livenessProbe={"grpc": {"port": "grpc"}})),
     "spec.template.spec.containers[0].livenessProbe.grpc.port", "expected int"),
    ("unknown probe field", _deployment(_with(GOOD_CONTAINER, livenessProbe={"grcp": {"port": 1}})),
     "spec.template.spec.containers[0].livenessProbe.grcp", "unknown field"),
    ("a good Job with a podFailurePolicy",
     _job(completionMode="Indexed", completions=2, parallelism=2, backoffLimit=4,
          podFailurePolicy={"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                                      {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2]}}]}),
     None, None),
    ("podFailurePolicy action Restart", _job(podFailurePolicy={"rules": [{"action": "Restart", "onExitCodes":
                                                                          {"operator": "In", "values": [1]}}]}),
     "spec.podFailurePolicy.rules[0].action", "one of FailJob"),
    ("podFailurePolicy rule with both matchers",
     _job(podFailurePolicy={"rules": [{"action": "Count", "onExitCodes": {"operator": "In", "values": [1]},
                                       "onPodConditions": [{"type": "DisruptionTarget"}]}]}),
     "spec.podFailurePolicy.rules[0]", "exactly one of"),
    ("apps/v1 Job", _job() | {"apiVersion": "apps/v1"}, "(document)", "not known to this checker"),
    ("a good PyTorchJob", _pytorchjob("Master", {"name": "pytorch", "image": "x"}), None, None),
    ("PyTorchJob replica type Chief", _pytorchjob("Chief", {"name": "pytorch", "image": "x"}),
     "spec.pytorchReplicaSpecs.Chief", "not one of Master, Worker"),
    ("PyTorchJob pod template checked by the package models",
     _pytorchjob("Worker", {"name": "pytorch", "image": "x", "volumeMount": []}),
     "spec.pytorchReplicaSpecs.Worker.template.spec.containers[0].volumeMount", "unknown field"),
]


def self_test():
    failed = 0
    for name, doc, want_path, want_text in SELF_TESTS:
        _, walker = check_document(doc)
        if want_path is None:
            ok = not walker.errors
            verdict = "accepted" if ok else f"REJECTED: {walker.errors}"
        else:
            ok = any(path == want_path and want_text in message for path, message in walker.errors)
            verdict = f"rejected: {walker.errors[0][0]}: {walker.errors[0][1][:110]}" if ok else \
                f"NOT rejected at {want_path} with '{want_text}' (errors: {walker.errors})"
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {verdict}")
        failed += not ok
    if failed:
        print(f"FAIL: {failed} of {len(SELF_TESTS)} self-test cases", file=sys.stderr)
        return 1
    print(f"self-test: {len(SELF_TESTS)} cases, the checker rejects what it should (python3-kubernetes {kubernetes.__version__})")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    if sys.argv[1:]:
        sys.exit("usage: check_k8s_schema.py [--self-test]")
    sys.exit(check_manifests())


if __name__ == "__main__":
    main()
