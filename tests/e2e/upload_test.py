"""Adapter upload over gRPC and ImportAdapter under --import-root, against the real daemon.

A ~46 MB PEFT adapter (rank 64 on all 7 projections of an 86-layer model, fp32), written
by the independent writer below (json + struct + numpy, not qlorad's writer), is uploaded
through the generated Python stubs and once through qloractl; the stored bytes equal the
source bytes and generation through it runs. Refusals — a truncated upload, a bad checksum,
a client that goes away, bad file names, a wrong-base adapter, paths outside the import
root (directly, through '..' and through symlinks) — name the field and store nothing:
ListAdapters, the state directory's adapters/ tree and uploads/ are unchanged."""

import hashlib
import json
import os
import struct
import sys
import time
import unittest

import grpc
import numpy as np

import daemon_harness as h

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import gguf_reader  # noqa: E402  (the independent GGUF reader of tests/reference)

HIDDEN, INTERMEDIATE, HEADS, KV_HEADS, LAYERS, VOCAB = 128, 256, 2, 1, 86, 128256
KV = HIDDEN // HEADS * KV_HEADS
# (module, in_features, out_features) of one decoder layer.
MODULES = [("self_attn.q_proj", HIDDEN, HIDDEN), ("self_attn.k_proj", HIDDEN, KV), ("self_attn.v_proj", HIDDEN, KV),
           ("self_attn.o_proj", HIDDEN, HIDDEN), ("mlp.gate_proj", HIDDEN, INTERMEDIATE),
           ("mlp.up_proj", HIDDEN, INTERMEDIATE), ("mlp.down_proj", INTERMEDIATE, HIDDEN)]


def write_safetensors(path, tensors, metadata=None):
    """safetensors by the spec: u64 LE header size, JSON header (8-byte padded), raw LE data."""
    header, offset = {}, 0
    for name, array in tensors:
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    if metadata:
        header["__metadata__"] = metadata
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for _, array in tensors:
            f.write(np.ascontiguousarray(array, dtype="<f4").tobytes())


def read_safetensors_np(path):
    """(name, float32 array) of an F32 safetensors file, read by the spec."""
    with open(path, "rb") as f:
        data = f.read()
    size = struct.unpack_from("<Q", data)[0]
    header = json.loads(data[8:8 + size])
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        assert spec["dtype"] == "F32", (name, spec["dtype"])
        begin, end = spec["data_offsets"]
        yield name, np.frombuffer(data, dtype="<f4", count=(end - begin) // 4, offset=8 + size + begin).reshape(spec["shape"])


def write_peft_adapter(directory, r, seed, hidden=HIDDEN, intermediate=INTERMEDIATE, layers=LAYERS, metadata=None):
    """A PEFT LoRA adapter directory as PEFT lays it out (random A and B, B non-zero)."""
    os.makedirs(directory, exist_ok=True)
    kv = hidden // HEADS * KV_HEADS
    dims = {"q_proj": (hidden, hidden), "k_proj": (hidden, kv), "v_proj": (hidden, kv), "o_proj": (hidden, hidden),
            "gate_proj": (hidden, intermediate), "up_proj": (hidden, intermediate), "down_proj": (intermediate, hidden)}
    rng = np.random.default_rng(seed)
    tensors = []
    for layer in range(layers):
        for module, _, _ in MODULES:
            fan_in, fan_out = dims[module.split(".")[1]]
            key = "base_model.model.model.layers.%d.%s" % (layer, module)
            tensors.append((key + ".lora_A.weight", rng.normal(0, 0.2, (r, fan_in)).astype(np.float32)))
            tensors.append((key + ".lora_B.weight", rng.normal(0, 0.2, (fan_out, r)).astype(np.float32)))
    write_safetensors(os.path.join(directory, "adapter_model.safetensors"), tensors, metadata)
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 2 * r, "lora_dropout": 0.0,
              "bias": "none", "fan_in_fan_out": False, "use_rslora": False, "base_model_name_or_path": "tiny",
              "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
    with open(os.path.join(directory, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(directory, "README.md"), "w") as f:
        f.write("# test adapter\nWritten by tests/e2e/upload_test.py.\n")
    return directory


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(root):
    """{relative path: sha256} of every file below root (symlinks as their target text)."""
    out = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            out[os.path.relpath(path, root)] = os.readlink(path) if os.path.islink(path) else sha256_file(path)
    return out


class UploadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.tempdir("qlorad-upload-")
        cls.model = os.path.join(cls.work, "model")
        h.subprocess.run([h.TOOL, "make-model", "--arch", "llama", "--layers", str(LAYERS), "--hidden", str(HIDDEN),
                          "--heads", str(HEADS), "--kv-heads", str(KV_HEADS), "--intermediate", str(INTERMEDIATE),
                          "--vocab", str(VOCAB), "--tie-embeddings", "--dtype", "f32", "--seed", "11",
                          "--tokenizer", os.path.join(h.NPM, "@lenml", "tokenizer-llama3", "models"), "--out", cls.model],
                         check=True, stdout=h.subprocess.DEVNULL)
        cls.big = write_peft_adapter(os.path.join(cls.work, "big"), r=64, seed=1)
        cls.root = os.path.join(cls.work, "import-root")
        cls.outside = write_peft_adapter(os.path.join(cls.work, "outside", "adapter"), r=4, seed=2, layers=2)
        write_peft_adapter(os.path.join(cls.root, "good"), r=4, seed=3, layers=2)
        os.symlink(cls.outside, os.path.join(cls.root, "link-out"))
        mixed = os.path.join(cls.root, "mixed")
        os.makedirs(mixed)
        with open(os.path.join(cls.outside, "adapter_config.json")) as src, open(os.path.join(mixed, "adapter_config.json"), "w") as dst:
            dst.write(src.read())
        os.symlink(os.path.join(cls.outside, "adapter_model.safetensors"), os.path.join(mixed, "adapter_model.safetensors"))
        cls.s = h.python_stubs(os.path.join(cls.work, "stubs"))
        cls.ad = cls.s["adapters"][0]
        cls.d = h.Daemon(cls.work, cls.model, extra_args=["--import-root", cls.root, "--max-adapter-upload-mb", "64",
                                                          "--no-require-approval"]).start()
        cls.channel = grpc.insecure_channel(cls.d.address)
        cls.adapters = cls.s["adapters"][1].AdaptersStub(cls.channel)
        cls.inference = cls.s["inference"][1].InferenceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.d.stop()

    # --- helpers -------------------------------------------------------------------------

    def md(self, role="deployer"):
        return self.d.metadata(role)

    def header(self, directory, name, files=None, **overrides):
        files = files or [f for f in ("adapter_config.json", "adapter_model.safetensors", "README.md")
                          if os.path.exists(os.path.join(directory, f))]
        specs = []
        for f in files:
            path = os.path.join(directory, f)
            spec = {"name": f, "size": os.path.getsize(path), "sha256": sha256_file(path)}
            spec.update(overrides.get(f, {}))
            specs.append(self.ad.UploadAdapterFile(**spec))
        return self.ad.UploadAdapterRequest(header=self.ad.UploadAdapterHeader(name=name, files=specs))

    def chunks(self, directory, files, limit=None, chunk=1 << 20):
        """FileChunk messages of `files`, each cut to `limit[name]` bytes when given."""
        for f in files:
            with open(os.path.join(directory, f), "rb") as src:
                data = src.read()
            if limit and f in limit:
                data = data[:limit[f]]
            for start in range(0, max(len(data), 1), chunk):
                piece = data[start:start + chunk]
                yield self.ad.UploadAdapterRequest(chunk=self.ad.FileChunk(name=f, data=piece,
                                                                           last=start + chunk >= len(data)))

    def upload(self, messages, role="deployer"):
        return self.adapters.UploadAdapter(iter(list(messages)), metadata=self.md(role), timeout=120)

    def snapshot(self):
        listed = self.adapters.ListAdapters(self.ad.ListAdaptersRequest(page_size=1000), metadata=self.md("viewer"))
        state = self.d.state_dir
        return ([a.adapter_id for a in listed.adapters], tree_digest(os.path.join(state, "adapters")),
                sorted(os.listdir(os.path.join(state, "uploads"))))

    def assert_refused(self, call, code, *fragments):
        """`call` fails with `code`, its message holds every fragment, and nothing was stored."""
        before = self.snapshot()
        with self.assertRaises(grpc.RpcError) as caught:
            call()
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        print("  refused: %s: %s" % (caught.exception.code().name, caught.exception.details()))
        for fragment in fragments:
            self.assertIn(fragment, caught.exception.details())
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(before[2], [], "upload staging directory not empty")
        return caught.exception.details()

    def generate(self, adapter):
        inf = self.s["inference"][0]
        return list(self.inference.Generate(inf.GenerateRequest(adapter=adapter, prompt="The weather today is",
                                                                raw_prompt=True, max_new_tokens=6),
                                            metadata=self.md("inference"), timeout=120).tokens)

    # --- tests ---------------------------------------------------------------------------

    def test_45mb_upload_through_the_python_client(self):
        source = os.path.join(self.big, "adapter_model.safetensors")
        self.assertGreater(os.path.getsize(source), 45_000_000)
        files = ["adapter_config.json", "adapter_model.safetensors", "README.md"]
        started = time.time()
        adapter = self.upload([self.header(self.big, "big-upload")] + list(self.chunks(self.big, files)))
        seconds = time.time() - started
        print("uploaded %.1f MB in %.2f s" % (os.path.getsize(source) / 1e6, seconds))
        self.assertEqual(adapter.adapter_id, "big-upload@1")
        self.assertEqual(adapter.state, "trained")
        stored = adapter.path
        self.assertTrue(stored.startswith(os.path.realpath(self.d.state_dir)) or stored.startswith(self.d.state_dir))
        for f in files:  # the stored bytes are the source bytes
            self.assertEqual(sha256_file(os.path.join(stored, f)), sha256_file(os.path.join(self.big, f)), f)
        self.assertEqual(os.listdir(os.path.join(self.d.state_dir, "uploads")), [])
        got = self.adapters.GetAdapter(self.ad.AdapterRef(adapter="big-upload@1"), metadata=self.md("viewer"))
        self.assertEqual(got.path, stored)
        loaded = self.adapters.LoadAdapter(self.ad.LoadAdapterRequest(adapter="big-upload@1"), metadata=self.md())
        self.assertTrue(loaded.loaded)
        with_adapter, base = self.generate("big-upload@1"), self.generate("")
        self.assertEqual(len(with_adapter), 6)
        self.assertNotEqual(with_adapter, base, "the uploaded adapter did not change the output")
        # Export (format peft) gives the same bytes back.
        exported = {}
        for chunk in self.adapters.ExportAdapter(self.ad.ExportAdapterRequest(adapter="big-upload@1", format="peft"),
                                                 metadata=self.md(), timeout=120):
            exported[chunk.name] = exported.get(chunk.name, b"") + chunk.data
        self.assertEqual(hashlib.sha256(exported["adapter_model.safetensors"]).hexdigest(), sha256_file(source))
        # Only a deployer (or admin) may upload.
        self.assert_refused(lambda: self.upload([self.header(self.big, "viewer-up")] +
                                                list(self.chunks(self.big, ["adapter_config.json"])), role="viewer"),
                            grpc.StatusCode.PERMISSION_DENIED, "UploadAdapter")

    def test_upload_through_qloractl(self):
        out = self.d.ctl("-o", "json", "adapters", "upload", self.big, "--name", "ctl-upload", role="deployer")
        adapter = json.loads(out.stdout)
        self.assertEqual(adapter["adapter_id"], "ctl-upload@1")
        self.assertEqual(sha256_file(os.path.join(adapter["path"], "adapter_model.safetensors")),
                         sha256_file(os.path.join(self.big, "adapter_model.safetensors")))
        exported = os.path.join(self.work, "ctl-export")
        self.d.ctl("adapters", "export", "ctl-upload@1", "--out", exported, "--format", "peft", role="deployer")
        self.assertEqual(sha256_file(os.path.join(exported, "adapter_model.safetensors")),
                         sha256_file(os.path.join(self.big, "adapter_model.safetensors")))
        bad = self.d.ctl("adapters", "export", "ctl-upload@1", "--out", exported, "--format", "onnx", role="deployer",
                         check=False)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("format", bad.stderr)

    def export_files(self, request):
        files = {}
        for chunk in self.adapters.ExportAdapter(request, metadata=self.md(), timeout=300):
            files[chunk.name] = files.get(chunk.name, b"") + chunk.data
        out = h.tempdir("qlorad-gguf-export-")
        for name, data in files.items():
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)
        return out, sorted(files)

    def test_export_as_gguf_over_grpc(self):
        """ExportAdapter format gguf: a GGUF LoRA adapter (read back by the independent reader:
        lora_a/lora_b equal the uploaded A/B, alpha from adapter_config.json) and, with merge,
        one GGUF of the merged model whose v_proj equals W + (alpha/r)·B·A computed here."""
        source = write_peft_adapter(os.path.join(self.work, "gguf-src"), r=4, seed=5, layers=2)
        files = ["adapter_config.json", "adapter_model.safetensors"]
        self.upload([self.header(source, "gguf-src", files)] + list(self.chunks(source, files)))
        weights = dict(read_safetensors_np(os.path.join(source, "adapter_model.safetensors")))
        out, names = self.export_files(self.ad.ExportAdapterRequest(adapter="gguf-src@1", format="gguf"))
        self.assertEqual(names, ["Modelfile", "adapter-lora.gguf"])
        lora = gguf_reader.GgufFile(os.path.join(out, "adapter-lora.gguf"))
        self.assertEqual(lora.kv["general.type"], "adapter")
        self.assertEqual(lora.kv["adapter.type"], "lora")
        self.assertAlmostEqual(lora.kv["adapter.lora.alpha"], 8.0)
        self.assertEqual(len(lora.tensors), 2 * 7 * 2)
        for layer in range(2):
            key = "base_model.model.model.layers.%d.self_attn.v_proj" % layer
            np.testing.assert_array_equal(lora.tensor("blk.%d.attn_v.weight.lora_a" % layer), weights[key + ".lora_A.weight"])
            np.testing.assert_array_equal(lora.tensor("blk.%d.attn_v.weight.lora_b" % layer), weights[key + ".lora_B.weight"])
        with open(os.path.join(out, "Modelfile")) as f:
            modelfile = f.read()
        self.assertIn("ADAPTER", modelfile)
        self.assertIn("adapter-lora.gguf", modelfile)

        out, names = self.export_files(self.ad.ExportAdapterRequest(adapter="gguf-src@1", format="gguf", merge=True))
        self.assertEqual(names, ["Modelfile", "model.gguf"])
        merged = gguf_reader.GgufFile(os.path.join(out, "model.gguf"))
        self.assertEqual(merged.kv["qlorad.adapter_id"], "gguf-src@1")
        self.assertRegex(merged.kv["qlorad.base_fingerprint"], r"^sha256:[0-9a-f]{64}$")
        base = dict(read_safetensors_np(os.path.join(self.model, "model.safetensors")))
        key = "model.layers.1.self_attn.v_proj"
        a = weights["base_model.model." + key + ".lora_A.weight"].astype(np.float64)
        b = weights["base_model.model." + key + ".lora_B.weight"].astype(np.float64)
        expected = base[key + ".weight"].astype(np.float64) + (8.0 / 4.0) * (b @ a)
        np.testing.assert_allclose(merged.tensor("blk.1.attn_v.weight"), expected, rtol=0, atol=1e-5)
        self.assertGreater(np.abs(expected - base[key + ".weight"]).max(), 0.1)  # the merge is visible
        self.assert_refused(lambda: list(self.adapters.ExportAdapter(
            self.ad.ExportAdapterRequest(adapter="gguf-src@1", format="gguf", type="q3_k"), metadata=self.md())),
            grpc.StatusCode.INVALID_ARGUMENT, "q3_k")

    def test_truncated_and_corrupted_uploads_store_nothing(self):
        files = ["adapter_config.json", "adapter_model.safetensors"]
        size = os.path.getsize(os.path.join(self.big, "adapter_model.safetensors"))
        half = size // 2
        self.assert_refused(lambda: self.upload([self.header(self.big, "cut", files)] +
                                                list(self.chunks(self.big, files, limit={files[1]: half}))),
                            grpc.StatusCode.INVALID_ARGUMENT,
                            "adapter_model.safetensors: truncated: got %d of %d bytes" % (half, size),
                            "header.files[1].size")
        wrong_sha = {files[1]: {"sha256": "ab" * 32}}
        self.assert_refused(lambda: self.upload([self.header(self.big, "badsum", files, **wrong_sha)] +
                                                list(self.chunks(self.big, files))),
                            grpc.StatusCode.INVALID_ARGUMENT, "header.files[1].sha256")
        self.assert_refused(lambda: self.upload([self.header(self.big, "short", files, **{files[0]: {"size": 10}})] +
                                                list(self.chunks(self.big, files))),
                            grpc.StatusCode.INVALID_ARGUMENT, "adapter_config.json", "header.files[0].size")
        self.assert_refused(lambda: self.upload([self.header(self.big, "toolarge", files, **{files[1]: {"size": 100 << 20}})]),
                            grpc.StatusCode.RESOURCE_EXHAUSTED, "header.files[1].size", "--max-adapter-upload-mb")
        self.assert_refused(lambda: self.upload([self.ad.UploadAdapterRequest(chunk=self.ad.FileChunk(name="x"))]),
                            grpc.StatusCode.INVALID_ARGUMENT, "header: the first message")
        self.assert_refused(lambda: self.upload([self.header(self.big, "undeclared", files)] +
                                                list(self.chunks(self.big, ["README.md"]))),
                            grpc.StatusCode.INVALID_ARGUMENT, "chunk.name", "README.md")
        for bad_name in ["../adapter_config.json", "sub/adapter_model.safetensors", "a\0b", "adapter_model.bin"]:
            hdr = self.header(self.big, "badname", files)
            hdr.header.files[1].name = bad_name
            self.assert_refused(lambda: self.upload([hdr]), grpc.StatusCode.INVALID_ARGUMENT, "header.files[1].name")
        hdr = self.header(self.big, "BAD NAME", files)
        self.assert_refused(lambda: self.upload([hdr]), grpc.StatusCode.INVALID_ARGUMENT, "header.name")
        hdr = self.header(self.big, "noweights", files[:1])
        self.assert_refused(lambda: self.upload([hdr]), grpc.StatusCode.INVALID_ARGUMENT, "adapter_model.safetensors is required")

    def test_client_going_away_mid_upload_stores_nothing(self):
        before = self.snapshot()
        files = ["adapter_config.json", "adapter_model.safetensors"]
        messages = [self.header(self.big, "gone", files)] + list(self.chunks(self.big, files))

        def slow():
            for i, m in enumerate(messages):
                if i == 10:
                    time.sleep(30)  # cancelled before this returns
                yield m
        future = self.adapters.UploadAdapter.future(slow(), metadata=self.md(), timeout=120)
        deadline = time.time() + 30
        while time.time() < deadline and not os.listdir(os.path.join(self.d.state_dir, "uploads")):
            time.sleep(0.05)  # the staging directory exists once the header was accepted
        self.assertTrue(os.listdir(os.path.join(self.d.state_dir, "uploads")), "the upload never started")
        future.cancel()
        deadline = time.time() + 30
        while time.time() < deadline and os.listdir(os.path.join(self.d.state_dir, "uploads")):
            time.sleep(0.1)
        self.assertEqual(self.snapshot(), before)

    def test_wrong_base_adapters_are_refused(self):
        shapes = write_peft_adapter(os.path.join(self.work, "wrong-shapes"), r=4, seed=5, hidden=96, intermediate=192,
                                    layers=2)
        files = ["adapter_config.json", "adapter_model.safetensors"]
        message = self.assert_refused(lambda: self.upload([self.header(shapes, "wrong-shapes", files)] +
                                                          list(self.chunks(shapes, files))),
                                      grpc.StatusCode.INVALID_ARGUMENT, "adapter tensor 'base_model.model.model.layers.",
                                      "has shape")
        self.assertNotIn("/uploads/", message)  # errors name the upload, not the staging path
        other_base = write_peft_adapter(os.path.join(self.work, "other-base"), r=4, seed=6, layers=2,
                                        metadata={"qlorad_base_fingerprint": "0" * 64})
        self.assert_refused(lambda: self.upload([self.header(other_base, "other-base", files)] +
                                                list(self.chunks(other_base, files))),
                            grpc.StatusCode.FAILED_PRECONDITION, "upload:other-base", "was trained on base " + "0" * 64)

    def test_import_only_below_the_import_root(self):
        def imp(path, name="imported"):
            return lambda: self.adapters.ImportAdapter(self.ad.ImportAdapterRequest(name=name, path=path),
                                                       metadata=self.md(), timeout=60)
        self.assert_refused(imp(self.outside), grpc.StatusCode.PERMISSION_DENIED, "path:", "outside the import root")
        self.assert_refused(imp("../outside/adapter"), grpc.StatusCode.PERMISSION_DENIED, "path:", "outside the import root")
        self.assert_refused(imp(os.path.join(self.root, "good", "..", "..", "outside", "adapter")),
                            grpc.StatusCode.PERMISSION_DENIED, "path:")
        self.assert_refused(imp(os.path.join(self.root, "link-out")), grpc.StatusCode.PERMISSION_DENIED, "path:",
                            "symlinks are resolved")
        self.assert_refused(imp("mixed"), grpc.StatusCode.PERMISSION_DENIED, "path:", "adapter_model.safetensors",
                            "symlinks out are refused")
        self.assert_refused(imp("missing"), grpc.StatusCode.NOT_FOUND, "path:")
        imported = imp(os.path.join(self.root, "good"), name="good-import")()
        self.assertEqual(imported.state, "trained")
        self.assertEqual(sha256_file(os.path.join(imported.path, "adapter_model.safetensors")),
                         sha256_file(os.path.join(self.root, "good", "adapter_model.safetensors")))
        relative = imp("good", name="good-import")()
        self.assertEqual(relative.adapter_id, "good-import@2")

    def test_import_is_off_without_an_import_root(self):
        d = h.Daemon(os.path.join(self.work), self.model, state_dir=os.path.join(self.work, "state-noroot")).start()
        try:
            with grpc.insecure_channel(d.address) as channel:
                stub = self.s["adapters"][1].AdaptersStub(channel)
                with self.assertRaises(grpc.RpcError) as caught:
                    stub.ImportAdapter(self.ad.ImportAdapterRequest(name="x", path=os.path.join(self.root, "good")),
                                       metadata=d.metadata("deployer"), timeout=60)
                self.assertEqual(caught.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
                self.assertIn("--import-root", caught.exception.details())
                listed = stub.ListAdapters(self.ad.ListAdaptersRequest(), metadata=d.metadata("viewer"))
                self.assertEqual(len(listed.adapters), 0)
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
