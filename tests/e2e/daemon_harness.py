"""Test harness for the real qlorad daemon: builds a tiny model (qlorad-tool, Llama-3
tokenizer from the npm fixtures), writes the UCI sentiment sentences as JSONL, starts
qlorad on free loopback ports with a tokens file, and runs qloractl / Python gRPC stubs
against it. Nothing is faked: real sockets, real SQLite, real files."""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

SOURCE_DIR = os.environ.get("QLORAD_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TOOL = os.environ.get("QLORAD_TOOL", "build/server/qlorad-tool")
DAEMON = os.environ.get("QLORAD_DAEMON", "build/server/qlorad")
CTL = os.environ.get("QLORACTL", "build/client/qloractl")
NPM = os.path.join(SOURCE_DIR, "tests", "fixtures", "npm", "node_modules")

ROLES = ["admin", "trainer", "deployer", "inference", "reviewer", "viewer"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_model(directory, seed=7):
    """A tiny Llama (2 layers, hidden 64) with the real Llama-3 tokenizer."""
    if os.path.exists(os.path.join(directory, "config.json")):
        return directory
    subprocess.run([TOOL, "make-model", "--arch", "llama", "--layers", "2", "--hidden", "64", "--heads", "4",
                    "--kv-heads", "2", "--intermediate", "128", "--vocab", "128256", "--tie-embeddings", "--dtype", "f32",
                    "--tokenizer", os.path.join(NPM, "@lenml", "tokenizer-llama3", "models"), "--seed", str(seed),
                    "--out", directory], check=True, stdout=subprocess.DEVNULL)
    return directory


def write_sentiment(path, source="imdb", limit=None):
    """UCI Sentiment Labelled Sentences (npm sentiment fixtures) as classification JSONL."""
    with open(os.path.join(NPM, "sentiment", "test", "fixtures", source + ".json")) as f:
        rows = json.load(f)
    rows = [r for r in rows if r.get("class") is not None][:limit]
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps({"text": r["text"].strip(), "label": "positive" if r["class"] == 1 else "negative"}) + "\n")
    return path


def write_preferences(classified, path):
    """A classification JSONL as DPO preference pairs: prompt = "Review: <text>", chosen = the
    sentence naming the correct label, rejected = the same sentence with the other label."""
    with open(classified) as f, open(path, "w") as out:
        for line in f:
            row = json.loads(line)
            wrong = "negative" if row["label"] == "positive" else "positive"
            out.write(json.dumps({"prompt": "Review: " + row["text"], "chosen": "The sentiment is %s." % row["label"],
                                  "rejected": "The sentiment is %s." % wrong}) + "\n")
    return path


class Daemon:
    """One qlorad process. Tokens: one per role, token == role name + '-secret'."""

    def __init__(self, workdir, model_dir, extra_args=(), tokens=True, state_dir=None, env=None):
        self.workdir = workdir
        self.env = dict(os.environ, **(env or {}))  # e.g. OMP_NUM_THREADS=1 for bit-reproducible training
        self.model_dir = model_dir
        self.state_dir = state_dir or os.path.join(workdir, "state")
        self.extra_args = list(extra_args)
        self.tokens_file = os.path.join(workdir, "tokens")
        self.tokens = {role: role + "-secret" for role in ROLES}
        if tokens:
            with open(self.tokens_file, "w") as f:
                for role, token in self.tokens.items():
                    f.write("%s %s sha256:%s\n" % (role + "-user", role, hashlib.sha256(token.encode()).hexdigest()))
        self.use_tokens = tokens
        self.proc = None
        self.address = None
        self.metrics_port = None
        self.openai_port = None

    def start(self, timeout=60):
        args = [DAEMON, "--state-dir", self.state_dir, "--model", self.model_dir, "--listen-address",
                "127.0.0.1:%d" % free_port(), "--metrics-address", "127.0.0.1:%d" % free_port(),
                "--checkpoint-every", "5"] + self.extra_args
        args += ["--tokens-file", self.tokens_file] if self.use_tokens else ["--no-auth"]
        self.log_path = os.path.join(self.workdir, "daemon-%d.log" % int(time.time() * 1000))
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(self.log_path) as f:
                text = f.read()
            m = re.search(r"serving .* on (\S+) \(metrics port (\d+)\)", text)
            if m:
                self.address, self.metrics_port = m.group(1), int(m.group(2))
                o = re.search(r"OpenAI-compatible API on port (\d+)", text)
                self.openai_port = int(o.group(1)) if o else None
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("qlorad exited with %s:\n%s" % (self.proc.returncode, text))
            time.sleep(0.1)
        with open(self.log_path) as f:
            raise RuntimeError("qlorad did not start:\n" + f.read())

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        self.log.close()
        return code

    def ctl(self, *args, role="admin", check=True, token=None, timeout=600):
        cmd = [CTL, "--address", self.address]
        if self.use_tokens or token:
            cmd += ["--token", token if token is not None else self.tokens[role]]
        result = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError("qloractl %s failed (%d): %s\n%s" % (" ".join(args), result.returncode, result.stderr,
                                                                     result.stdout))
        return result

    def ctl_json(self, *args, role="admin"):
        return json.loads(self.ctl("-o", "json", *args, role=role).stdout or "{}")

    def metadata(self, role="admin"):
        """gRPC call metadata carrying the bearer token of `role`."""
        return [("authorization", "Bearer " + self.tokens[role])]

    def metrics(self):
        import urllib.request
        return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=10).read().decode()


def python_stubs(out_dir):
    """Generates qlorad.v1 Python stubs from proto/ (the second-language client) with Debian's
    protoc + grpc_python_plugin (grpc_tools' bundled protoc predates proto3 `optional`)."""
    proto_root = os.path.join(SOURCE_DIR, "proto")
    names = ("datasets", "jobs", "adapters", "inference", "evaluations", "reviews")
    files = [os.path.join("qlorad", "v1", n + ".proto") for n in names]
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run(["protoc", "-I" + proto_root, "-I/usr/include", "--python_out=" + out_dir,
                    "--grpc_python_out=" + out_dir, "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin"] + files,
                   check=True)
    sys.path.insert(0, out_dir)
    import importlib
    return {n: (importlib.import_module("qlorad.v1.%s_pb2" % n), importlib.import_module("qlorad.v1.%s_pb2_grpc" % n))
            for n in names}


def tempdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)
