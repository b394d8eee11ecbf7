// Fuzzes the GGUF writer -> reader round trip: the input drives which metadata
// (every value kind the writer has) and which tensors (shapes, f32/f16/q4_0/q8_0) are
// written; the file written must parse back with the same keys, values, tensor
// names, shapes, types and bytes, at aligned offsets.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/export/gguf_reader.h"
#include "core/export/gguf_writer.h"
#include "core/util/file_util.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace qlorad::gguf;

void Require(bool ok) {
  if (!ok) std::abort();
}

// Adds one key of a fuzzer-chosen kind and records what the reader must return.
void AddKey(FuzzedDataProvider& in, GgufWriter& writer, std::map<std::string, GgufValue>& expected) {
  const std::string key = "k." + in.ConsumeRandomLengthString(24);
  if (key == "k.") return;
  GgufValue v;
  switch (in.ConsumeIntegralInRange(0, 6)) {
    case 0: { const uint32_t x = in.ConsumeIntegral<uint32_t>(); writer.SetUint32(key, x); v.type = GgufValueType::kUint32; v.scalar = x; break; }
    case 1: { const int32_t x = in.ConsumeIntegral<int32_t>(); writer.SetInt32(key, x); v.type = GgufValueType::kInt32; v.scalar = static_cast<uint32_t>(x); break; }
    case 2: { const uint64_t x = in.ConsumeIntegral<uint64_t>(); writer.SetUint64(key, x); v.type = GgufValueType::kUint64; v.scalar = x; break; }
    case 3: { const bool x = in.ConsumeBool(); writer.SetBool(key, x); v.type = GgufValueType::kBool; v.scalar = x; break; }
    case 4: { const std::string x = in.ConsumeRandomLengthString(64); writer.SetString(key, x); v.type = GgufValueType::kString; v.text = x; break; }
    case 5: {
      std::vector<std::string> xs(in.ConsumeIntegralInRange(0, 8));
      for (auto& x : xs) x = in.ConsumeRandomLengthString(16);
      writer.SetStringArray(key, xs);
      v.type = GgufValueType::kArray;
      v.element_type = GgufValueType::kString;
      for (const auto& x : xs) { GgufValue item; item.type = GgufValueType::kString; item.text = x; v.items.push_back(item); }
      break;
    }
    default: {
      std::vector<int32_t> xs(in.ConsumeIntegralInRange(0, 8));
      for (auto& x : xs) x = in.ConsumeIntegral<int32_t>();
      writer.SetInt32Array(key, xs);
      v.type = GgufValueType::kArray;
      v.element_type = GgufValueType::kInt32;
      for (int32_t x : xs) { GgufValue item; item.type = GgufValueType::kInt32; item.scalar = static_cast<uint32_t>(x); v.items.push_back(item); }
    }
  }
  expected[key] = v;  // setting a key again replaces it
}

bool SameValue(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.scalar != b.scalar || a.text != b.text || a.items.size() != b.items.size()) return false;
  if (a.type == GgufValueType::kArray && a.element_type != b.element_type) return false;
  for (size_t i = 0; i < a.items.size(); ++i) {
    if (!SameValue(a.items[i], b.items[i])) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  GgufWriter writer;
  std::map<std::string, GgufValue> expected;
  const uint32_t alignment = 1u << in.ConsumeIntegralInRange(0, 7);
  writer.SetAlignment(alignment);
  for (int i = in.ConsumeIntegralInRange(0, 6); i > 0; --i) AddKey(in, writer, expected);
  std::vector<std::string> payloads;
  for (int i = in.ConsumeIntegralInRange(0, 4); i > 0; --i) {
    GgufTensorInfo info;
    info.name = "t" + std::to_string(i) + in.ConsumeRandomLengthString(8);
    static constexpr GgmlType kTypes[] = {GgmlType::kF32, GgmlType::kF16, GgmlType::kQ4_0, GgmlType::kQ8_0};
    info.type = kTypes[in.ConsumeIntegralInRange(0, 3)];
    for (int d = in.ConsumeIntegralInRange(1, 3); d > 0; --d) info.shape.push_back(in.ConsumeIntegralInRange(1, 3));
    info.shape.back() *= GgmlBlockValues(info.type);
    std::vector<float> values(info.NumValues());
    for (float& x : values) x = in.ConsumeFloatingPointInRange(-4.0f, 4.0f);
    auto bytes = EncodeValues(values, info.type);
    Require(bytes.ok());
    if (!writer.AddTensor(info).ok()) continue;  // a duplicate name is refused
    payloads.push_back(*bytes);
  }
  const std::string path = qlorad::fuzz::ScratchDir() + "/roundtrip.gguf";
  Require(writer.Write(path, [&](size_t i) -> absl::StatusOr<std::string> { return payloads[i]; }).ok());
  absl::StatusOr<std::string> file_bytes_or = qlorad::ReadFileToString(path);
  Require(file_bytes_or.ok());
  const std::string& file_bytes = *file_bytes_or;
  auto file = ParseGguf(file_bytes, path);
  Require(file.ok());
  Require(file->version == GgufWriter::kVersion && file->alignment == alignment);
  for (const auto& [key, value] : expected) {
    const GgufValue* got = file->Find(key);
    Require(got != nullptr && SameValue(*got, value));
  }
  Require(file->tensors.size() == payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    const GgufReadTensor& t = file->tensors[i];
    const GgufTensorInfo& w = writer.tensors()[i];
    Require(t.name == w.name && t.shape == w.shape && t.type == w.type && t.offset % alignment == 0);
    Require(GgufTensorBytes(file_bytes, *file, t) == payloads[i]);
  }
  return 0;
}
