// nf4_dump: runs the CPU 4-bit kernels on a raw input file and writes every result as
// raw little-endian files, for tests/reference/nf4_kernels_test.py to compare bit for
// bit with the Python reference.
//
//   nf4_dump --in FILE --dtype f32|bf16 --type nf4|fp4 --blocksize B --out DIR [--scalar]
//   nf4_dump --tables DIR      (code books, thresholds, dynamic map)
//
// Output files in DIR: packed.u8, absmax.f32, deq.f32, deq.bf16, dq_codes.u8,
// dq_nested.f32, dq_offset.f32, dq_absmax.f32 (absmax rebuilt from the double quant),
// deq_nested.f32 (dequantized through the double-quantized scales).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kernels/blockwise8bit.h"
#include "kernels/cpu_isa.h"
#include "kernels/quant4bit.h"
#include "kernels/quant_tables.h"

namespace {

using qlorad::kernels::FloatFormat;
using qlorad::kernels::QuantType;

template <typename T>
bool WriteFile(const std::string& path, const T* data, size_t count) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * sizeof(T)));
  return static_cast<bool>(f);
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "nf4_dump: %s\n", what.c_str());
  return 1;
}

int Check(const absl::Status& s, const char* what) {
  if (s.ok()) return 0;
  std::fprintf(stderr, "nf4_dump: %s: %s\n", what, std::string(s.message()).c_str());
  return 1;
}

int DumpTables(const std::string& dir) {
  using namespace qlorad::kernels;
  bool ok = WriteFile(dir + "/nf4_code.f32", kNf4Code, 16) &&
            WriteFile(dir + "/nf4_thresholds.f32", kNf4Thresholds, 15) &&
            WriteFile(dir + "/fp4_code.f32", kFp4Code, 16) &&
            WriteFile(dir + "/fp4_thresholds.f32", kFp4Thresholds, 7) &&
            WriteFile(dir + "/dynamic_map.f32", kDynamicMapSigned, 256);
  return ok ? 0 : Fail("cannot write tables to " + dir);
}

}  // namespace

int main(int argc, char** argv) {
  std::string in, dtype = "f32", type = "nf4", out, tables;
  int64_t blocksize = 64;
  bool scalar = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--in") in = next();
    else if (a == "--dtype") dtype = next();
    else if (a == "--type") type = next();
    else if (a == "--blocksize") blocksize = std::atoll(next().c_str());
    else if (a == "--out") out = next();
    else if (a == "--tables") tables = next();
    else if (a == "--scalar") scalar = true;
    else return Fail("unknown flag " + a);
  }
  if (!tables.empty()) return DumpTables(tables);
  if (in.empty() || out.empty()) return Fail("--in and --out are required");
  if (type != "nf4" && type != "fp4") return Fail("--type must be nf4 or fp4");
  if (dtype != "f32" && dtype != "bf16") return Fail("--dtype must be f32 or bf16");
  if (scalar) qlorad::kernels::LimitIsaForTesting(qlorad::kernels::CpuIsa::kScalar);
  const QuantType qt = type == "nf4" ? QuantType::kNF4 : QuantType::kFP4;

  std::ifstream f(in, std::ios::binary);
  const std::vector<char> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t elem = dtype == "f32" ? 4 : 2;
  if (raw.size() % elem != 0) return Fail("input size is not a multiple of the element size");
  const int64_t n = static_cast<int64_t>(raw.size() / elem);

  std::vector<uint8_t> packed(static_cast<size_t>(qlorad::kernels::PackedBytes(n)));
  std::vector<float> absmax(static_cast<size_t>(qlorad::kernels::NumBlocks(n, blocksize)));
  if (dtype == "f32") {
    std::vector<float> x(static_cast<size_t>(n));
    std::memcpy(x.data(), raw.data(), raw.size());
    if (Check(qlorad::kernels::Quantize4bit(qt, x, blocksize, absl::MakeSpan(packed),
                                            absl::MakeSpan(absmax)), "quantize")) return 1;
  } else {
    std::vector<uint16_t> x(static_cast<size_t>(n));
    std::memcpy(x.data(), raw.data(), raw.size());
    if (Check(qlorad::kernels::Quantize4bit(qt, x, blocksize, absl::MakeSpan(packed),
                                            absl::MakeSpan(absmax)), "quantize")) return 1;
  }

  qlorad::kernels::Packed4bitView w;
  w.type = qt;
  w.packed = packed;
  w.numel = n;
  w.blocksize = blocksize;
  w.scales.absmax = absmax;
  std::vector<float> deq(static_cast<size_t>(n));
  std::vector<uint16_t> deq_bf16(static_cast<size_t>(n));
  if (Check(qlorad::kernels::Dequantize4bit(w, 0, n, absl::MakeSpan(deq)), "dequantize") ||
      Check(qlorad::kernels::Dequantize4bit(w, 0, n, absl::MakeSpan(deq_bf16)), "dequantize bf16"))
    return 1;

  // Double quantization of the absmax.
  const int64_t blocks = static_cast<int64_t>(absmax.size());
  std::vector<uint8_t> codes(absmax.size());
  std::vector<float> nested(static_cast<size_t>(
      qlorad::kernels::NumBlocks(blocks, qlorad::kernels::kNestedBlocksize)));
  auto offset = qlorad::kernels::DoubleQuantizeAbsmax(
      absmax, qlorad::kernels::kNestedBlocksize, qlorad::kernels::kDynamicMapSigned,
      absl::MakeSpan(codes), absl::MakeSpan(nested));
  if (Check(offset.status(), "double quantize")) return 1;
  const float off = *offset;
  qlorad::kernels::Packed4bitView wn = w;
  wn.scales = {};
  wn.scales.codes = codes;
  wn.scales.nested_absmax = nested;
  wn.scales.nested_code = absl::MakeConstSpan(qlorad::kernels::kDynamicMapSigned, 256);
  wn.scales.offset = off;
  std::vector<float> rebuilt(absmax.size());
  for (int64_t b = 0; b < blocks; ++b) rebuilt[b] = wn.scales.Get(b);
  std::vector<float> deq_nested(static_cast<size_t>(n));
  if (Check(qlorad::kernels::Dequantize4bit(wn, 0, n, absl::MakeSpan(deq_nested)),
            "dequantize nested")) return 1;

  const bool ok = WriteFile(out + "/packed.u8", packed.data(), packed.size()) &&
                  WriteFile(out + "/absmax.f32", absmax.data(), absmax.size()) &&
                  WriteFile(out + "/deq.f32", deq.data(), deq.size()) &&
                  WriteFile(out + "/deq.bf16", deq_bf16.data(), deq_bf16.size()) &&
                  WriteFile(out + "/dq_codes.u8", codes.data(), codes.size()) &&
                  WriteFile(out + "/dq_nested.f32", nested.data(), nested.size()) &&
                  WriteFile(out + "/dq_offset.f32", &off, 1) &&
                  WriteFile(out + "/dq_absmax.f32", rebuilt.data(), rebuilt.size()) &&
                  WriteFile(out + "/deq_nested.f32", deq_nested.data(), deq_nested.size());
  return ok ? 0 : Fail("cannot write results to " + out);
}
