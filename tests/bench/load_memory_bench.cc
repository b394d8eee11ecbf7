// Memory of an NF4 (QLoRA) model load from a bf16 checkpoint:
//  - bytes per parameter of the quantized linear layers, counted from their tensors;
//  - peak RSS growth during the load (VmHWM after clearing it) against the final
//    in-memory size of every model tensor — streaming must keep it near 1x, not 2x.
// Usage: load_memory_bench [--model DIR] [--quantize nf4|none]
// Without --model it writes a ~250M-parameter bf16 Llama-shaped model to a temp dir.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "core/model/loader.h"
#include "tests/bench/bench_args.h"
#include "core/model/random_model.h"
#include "core/quant/nf4_model.h"

namespace {

int64_t StatusField(const std::string& field) {  // kB -> bytes
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  return -1;
}

int64_t TensorBytes(qlorad::LlamaModel& model) {
  std::set<const void*> seen;
  int64_t bytes = 0;
  auto count = [&](const at::Tensor& t) {
    if (t.defined() && seen.insert(t.storage().data()).second) bytes += static_cast<int64_t>(t.storage().nbytes());
  };
  for (const auto& b : model->buffers()) count(b);
  for (const auto& p : model->parameters()) count(p);
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace qlorad;
  using bench::Arg;
  std::string dir = Arg(argc, argv, "model", "");
  const bool quantize = Arg(argc, argv, "quantize", "nf4") == "nf4";
  if (dir.empty()) {
    dir = (std::filesystem::temp_directory_path() / "qlorad_bench_250m_bf16").string();
    if (!std::filesystem::exists(dir + "/config.json")) {
      RandomModelOptions options;
      options.config = MakeConfig("llama", 16, 1024, 16, 4, 2816, 32000, /*tie=*/false);
      options.dtype = DType::kBF16;
      options.seed = 2;
      if (auto s = WriteRandomModel(dir, options); !s.ok()) return std::fprintf(stderr, "%s\n", s.ToString().c_str()), 1;
    }
  }
  LoadOptions load;
  load.compute_fingerprint = false;
  if (quantize) load.linear_factory = MakeQuantizedLinearFactory(QuantOptions{});
  std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM to the current RSS
  const int64_t rss_before = StatusField("VmRSS");
  const int64_t anon_before = StatusField("RssAnon"), file_before = StatusField("RssFile");
  auto loaded = LoadModel(dir, load);
  if (!loaded.ok()) return std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str()), 1;
  const int64_t peak = StatusField("VmHWM"), rss_after = StatusField("VmRSS");
  const int64_t final_bytes = TensorBytes(loaded->model);
  std::printf("model: %s (%.1fM parameters, bf16 file), load %s\n", dir.c_str(),
              loaded->config.ParameterCount() / 1e6, quantize ? "NF4 (double quant, blocksize 64)" : "dense fp32");
  if (quantize) {
    QuantizedFootprint f = MeasureQuantizedFootprint(loaded->model);
    std::printf("quantized linear layers: %.1fM parameters, %.1f MB, %.4f bytes/parameter (goal <= 0.52)\n",
                f.parameters / 1e6, f.bytes / 1e6, f.BytesPerParameter());
  }
  std::printf("final in-memory tensors: %.1f MB\n", final_bytes / 1e6);
  std::printf("RSS before %.1f MB, after %.1f MB, peak %.1f MB\n", rss_before / 1e6, rss_after / 1e6, peak / 1e6);
  std::printf("RSS by kind, before -> after: anonymous %.1f -> %.1f MB, file-backed %.1f -> %.1f MB\n",
              anon_before / 1e6, StatusField("RssAnon") / 1e6, file_before / 1e6, StatusField("RssFile") / 1e6);
  std::printf("peak growth during load / final size = %.3f (goal <= 1.2)\n",
              static_cast<double>(peak - rss_before) / final_bytes);
  return 0;
}
