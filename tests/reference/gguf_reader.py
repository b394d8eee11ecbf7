"""A minimal, independent GGUF (v3) reader for tests: header, key-values, tensor
infos, and F32/F16/Q8_0/Q4_0 data dequantized with numpy.

Written from the format description (gguf-py's constants and ggml-common.h's
block layouts), not from qlorad's writer:
  header  u32 magic "GGUF", u32 version, u64 n_tensors, u64 n_kv
  kv      string key, u32 type, value (string: u64 len + bytes; array: u32 type, u64 n, items)
  infos   string name, u32 n_dims, u64 ne[n_dims] (innermost first), u32 ggml type, u64 offset
  data    at the first multiple of general.alignment after the infos
"""
import struct

import numpy as np

F32, F16, Q4_0, Q8_0 = 0, 1, 2, 8
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9


class GgufFile:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        magic, self.version, n_tensors, n_kv = struct.unpack_from("<IIQQ", self.buf, 0)
        if magic != 0x46554747:
            raise ValueError(f"{path}: bad magic {magic:#x}")
        self.pos = 24
        self.kv = {}
        self.kv_types = {}
        for _ in range(n_kv):
            key = self._string()
            vtype = self._u32()
            self.kv_types[key] = vtype
            self.kv[key] = self._value(vtype)
        self.tensors = {}
        self.order = []
        for _ in range(n_tensors):
            name = self._string()
            n_dims = self._u32()
            ne = [self._u64() for _ in range(n_dims)]
            ttype = self._u32()
            offset = self._u64()
            self.tensors[name] = (ne, ttype, offset)
            self.order.append(name)
        self.alignment = self.kv.get("general.alignment", 32)
        self.data_start = (self.pos + self.alignment - 1) // self.alignment * self.alignment

    def _u32(self):
        (v,) = struct.unpack_from("<I", self.buf, self.pos)
        self.pos += 4
        return v

    def _u64(self):
        (v,) = struct.unpack_from("<Q", self.buf, self.pos)
        self.pos += 8
        return v

    def _string(self):
        n = self._u64()
        s = self.buf[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def _value(self, vtype):
        if vtype == STRING:
            return self._string()
        if vtype == ARRAY:
            etype = self._u32()
            n = self._u64()
            if etype in (4, 5, 6):  # fast path for big numeric arrays
                dtype = {4: "<u4", 5: "<i4", 6: "<f4"}[etype]
                arr = np.frombuffer(self.buf, dtype=dtype, count=n, offset=self.pos).copy()
                self.pos += 4 * n
                return arr
            return [self._value(etype) for _ in range(n)]
        fmt = _SCALARS[vtype]
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def type_of(self, name):
        return self.tensors[name][1]

    def torch_shape(self, name):
        return list(reversed(self.tensors[name][0]))

    def raw_blocks(self, name):
        """For Q8_0/Q4_0: (scales float32 [n_blocks], quants int [n_blocks, 32]) in value order."""
        ne, ttype, offset = self.tensors[name]
        n = int(np.prod(ne))
        start = self.data_start + offset
        if ttype == Q8_0:
            blocks = np.frombuffer(self.buf, dtype=np.uint8, count=n // 32 * 34, offset=start).reshape(-1, 34)
            d = blocks[:, :2].copy().view("<f2").astype(np.float32).reshape(-1)
            q = blocks[:, 2:].copy().view(np.int8).astype(np.int32)
            return d, q
        if ttype == Q4_0:
            blocks = np.frombuffer(self.buf, dtype=np.uint8, count=n // 32 * 18, offset=start).reshape(-1, 18)
            d = blocks[:, :2].copy().view("<f2").astype(np.float32).reshape(-1)
            packed = blocks[:, 2:].astype(np.int32)
            q = np.concatenate([packed & 0x0F, packed >> 4], axis=1) - 8  # values j and j + 16
            return d, q
        raise ValueError(f"{name}: type {ttype} has no blocks")

    def tensor(self, name):
        """The tensor as float64 numpy in torch shape (outermost first)."""
        ne, ttype, offset = self.tensors[name]
        n = int(np.prod(ne))
        start = self.data_start + offset
        if ttype == F32:
            flat = np.frombuffer(self.buf, dtype="<f4", count=n, offset=start).astype(np.float64)
        elif ttype == F16:
            flat = np.frombuffer(self.buf, dtype="<f2", count=n, offset=start).astype(np.float64)
        elif ttype in (Q8_0, Q4_0):
            d, q = self.raw_blocks(name)
            flat = (q.astype(np.float64) * d.astype(np.float64)[:, None]).reshape(-1)
        else:
            raise ValueError(f"{name}: unsupported ggml type {ttype}")
        return flat.reshape(list(reversed(ne)))
