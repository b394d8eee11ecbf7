// Prefill and decode throughput of the decoder on CPU (or --device), next to
// this machine's measured fp32 GEMM rate and memory bandwidth, which bound them:
//   prefill ≤ GEMM FLOP/s / (2 · params) tokens/s,  decode ≤ bandwidth / weight bytes.
// Usage: model_bench [--model DIR] [--device cpu] [--prompt 512] [--decode 64] [--threads N]
//                    [--kv-heads 4] [--reps 1] [--decode-prompt N] [--quantize none|nf4]
//                    [--serve-head fp32|bf16|int8|nf4] [--activations fp32|int8]
//                    [--paths both|fused|libtorch]   (which decode paths to time)
// --threads sets ATen's intra-op threads (default 1: OpenBLAS threads GEMMs itself).
// Without --model it writes a ~100M-parameter Llama-shaped model (12 heads, --kv-heads
// key/value heads) to a temp dir. Decode is timed on the libtorch path and on the fused
// path (fused_decoder.h), alternating, --reps times each, after a prefill of
// --decode-prompt tokens (default --prompt; 1 = from an empty cache, as llama-bench's
// tg). The read-bandwidth floor is a threaded sum over 1 GB (kernels' pool), measured
// in the same run. --quantize nf4 loads the linear layers as NF4 (double quant);
// --activations int8 feeds them 8-bit activations (kernels/gemm4bit_q8.h) on the fused path.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include "core/model/device.h"
#include "core/util/cpu_runtime.h"
#include "core/model/fused_decoder.h"
#include "kernels/cpu_isa.h"
#include "kernels/matvec.h"
#include "kernels/parallel.h"
#include "core/model/loader.h"
#include "tests/bench/bench_args.h"
#include "core/model/random_model.h"
#include "core/quant/nf4_model.h"

namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double GemmGflops(const c10::Device& device) {
  auto opts = at::TensorOptions().dtype(at::kFloat).device(device);
  at::Tensor a = at::randn({1024, 1024}, opts), b = at::randn({1024, 1024}, opts);
  for (int i = 0; i < 3; ++i) at::matmul(a, b);
  const int reps = 20;
  auto start = Clock::now();
  for (int i = 0; i < reps; ++i) at::matmul(a, b).sum().item<float>();
  return 2.0 * 1024 * 1024 * 1024 * reps / Seconds(start) / 1e9;
}

double MemcpyGBps() {
  const size_t bytes = size_t{512} << 20;
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  std::memcpy(dst.data(), src.data(), bytes);
  const int reps = 5;
  auto start = Clock::now();
  for (int i = 0; i < reps; ++i) std::memcpy(dst.data(), src.data(), bytes);
  // memcpy reads and writes every byte: count both directions, as weight streaming reads once.
  return 2.0 * bytes * reps / Seconds(start) / 1e9;
}

// Bytes/s a threaded streaming read reaches (a dot product of 1 GB with itself through
// the decode kernel: the same loads decode does).
double ReadGBps() {
  const int64_t cols = 4096, rows = (int64_t{1} << 30) / (4 * cols);
  std::vector<float> m(rows * cols, 1.0f), x(cols, 1.0f), y(rows);
  double best = 0;
  for (int rep = 0; rep < 4; ++rep) {
    auto start = Clock::now();
    qlorad::kernels::ParallelFor(rows, 16, [&](int64_t b, int64_t e) {
      qlorad::kernels::MatvecRows(m.data(), cols, cols, x.data(), cols, 1, nullptr, y.data(), rows, b, e);
    });
    best = std::max(best, 4.0 * rows * cols / Seconds(start) / 1e9);
  }
  return best;
}

// Decodes `steps` greedy tokens after `next` on the libtorch path or the fused one.
double DecodeSeconds(qlorad::LlamaModel& model, qlorad::KvCache& cache, at::Tensor next, int64_t steps, bool fused,
                     qlorad::FusedDecoderOptions options) {
  auto decoder = qlorad::FusedDecoder::Create(model, options);
  auto start = Clock::now();
  for (int64_t i = 0; i < steps; ++i) {
    if (fused) {
      next = (*decoder)->Step(cache, {next.item<int64_t>()}).value()[0].argmax().view({1, 1});
    } else {
      next = model->forward({next, {}, {}, &cache})[0][-1].argmax().view({1, 1});
    }
  }
  return Seconds(start);
}

}  // namespace

int main(int argc, char** argv) {
  qlorad::ConfigureCpuRuntime(argv);
  using namespace qlorad;
  using bench::Arg;
  std::string model_dir = Arg(argc, argv, "model", "");
  const int64_t prompt = std::stoll(Arg(argc, argv, "prompt", "512"));
  const int64_t decode = std::stoll(Arg(argc, argv, "decode", "64"));
  at::set_num_threads(std::stoi(Arg(argc, argv, "threads", "1")));
  auto device = ParseDevice(Arg(argc, argv, "device", "cpu"));
  if (!device.ok()) return std::fprintf(stderr, "%s\n", std::string(device.status().message()).c_str()), 1;
  if (model_dir.empty()) {
    model_dir = (std::filesystem::temp_directory_path() / "qlorad_bench_100m").string();
    RandomModelOptions options;
    const int64_t kv_heads = std::stoll(Arg(argc, argv, "kv-heads", "4"));
    model_dir += "_kv" + std::to_string(kv_heads);
    options.config = MakeConfig("llama", 12, 768, 12, kv_heads, 2048, 32000, /*tie=*/false);
    options.seed = 1;
    if (!std::filesystem::exists(model_dir + "/config.json")) {
      auto status = WriteRandomModel(model_dir, options);
      if (!status.ok()) return std::fprintf(stderr, "%s\n", std::string(status.message()).c_str()), 1;
    }
  }
  LoadOptions load;
  load.device = *device;
  load.compute_fingerprint = false;
  const bool nf4 = Arg(argc, argv, "quantize", "none") == "nf4";
  if (nf4) load.linear_factory = MakeQuantizedLinearFactory(QuantOptions{});
  auto loaded = LoadModel(model_dir, load);
  if (!loaded.ok()) return std::fprintf(stderr, "%s\n", std::string(loaded.status().message()).c_str()), 1;
  const ModelConfig& config = loaded->config;
  const double params = static_cast<double>(config.ParameterCount());
  // Bytes read per decoded token: every weight once (embeddings: one row, ignored).
  const double weight_bytes = (params - config.vocab_size * config.hidden_size * (config.tie_word_embeddings ? 0 : 1)) * 4;

  const double gflops = GemmGflops(*device), bandwidth = MemcpyGBps(), read = ReadGBps();
  const int reps = std::stoi(Arg(argc, argv, "reps", "1"));
  const std::string activations = Arg(argc, argv, "activations", "fp32");
  auto parsed = ParseFusedDecoderOptions(Arg(argc, argv, "serve-head", "fp32"), activations);
  if (!parsed.ok()) return std::fprintf(stderr, "%s\n", std::string(parsed.status().message()).c_str()), 1;
  const FusedDecoderOptions fused_options = *parsed;
  const int64_t decode_prompt = std::stoll(Arg(argc, argv, "decode-prompt", std::to_string(prompt)));
  at::NoGradGuard no_grad;
  auto ids = at::randint(0, config.vocab_size, {1, prompt}, at::TensorOptions().dtype(at::kLong));
  auto cache = loaded->model->NewCache(1, std::max(prompt, decode_prompt) + decode);
  loaded->model->forward({ids.narrow(1, 0, 16), {}, {}, cache.get()});  // warm-up
  std::vector<double> prefill_rates, torch_rates, fused_rates;
  const std::string paths = Arg(argc, argv, "paths", "both");
  std::vector<bool> decode_paths;
  if (paths != "fused") decode_paths.push_back(false);
  if (paths != "libtorch") decode_paths.push_back(true);
  for (int rep = 0; rep < reps; ++rep) {
    for (bool fused : decode_paths) {
      cache->Reset();
      auto start = Clock::now();
      at::Tensor logits = loaded->model->forward({ids, {}, {}, cache.get()});
      prefill_rates.push_back(prompt / Seconds(start));
      if (decode_prompt != prompt) {
        cache->Reset();
        logits = loaded->model->forward({ids.narrow(1, 0, decode_prompt), {}, {}, cache.get()});
      }
      at::Tensor next = logits[0][-1].argmax().view({1, 1});
      (fused ? fused_rates : torch_rates).push_back(decode / DecodeSeconds(loaded->model, *cache, next, decode, fused, fused_options));
    }
  }
  auto median = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
  auto range = [](const std::vector<double>& v) {
    return std::to_string(*std::min_element(v.begin(), v.end())).substr(0, 6) + "-" +
           std::to_string(*std::max_element(v.begin(), v.end())).substr(0, 6);
  };
  const double decode_floor = read * 1e9 / weight_bytes, prefill_floor = gflops * 1e9 / (2 * params);

  std::printf("model: %s, %.1fM parameters, linear layers %s, %d ATen threads, %d kernel threads, device %s, ISA %s\n", model_dir.c_str(),
              params / 1e6, nf4 ? "NF4" : "dense", at::get_num_threads(), kernels::NumThreads(), device->str().c_str(),
              kernels::CpuIsaName(kernels::ActiveIsa()));
  std::printf("machine: fp32 GEMM 1024^3 %.1f GFLOP/s (OpenBLAS kernels: %s), memcpy %.1f GB/s (read+write), threaded read %.1f GB/s\n",
              gflops, BlasCoreName().c_str(), bandwidth, read);
  std::printf("prefill %lld tokens: %.1f tokens/s median of %zu (%s) (GEMM floor %.1f tokens/s, %.0f%% of it)\n",
              static_cast<long long>(prompt), median(prefill_rates), prefill_rates.size(), range(prefill_rates).c_str(),
              prefill_floor, 100 * median(prefill_rates) / prefill_floor);
  for (bool fused : decode_paths) {
    const auto& rates = fused ? fused_rates : torch_rates;
    std::printf("decode %lld tokens after %lld, %s path%s: %.1f tokens/s median of %d (%s) (fp32 read floor %.1f tokens/s, %.0f%% of it)\n",
                static_cast<long long>(decode), static_cast<long long>(decode_prompt), fused ? "fused" : "libtorch",
                fused ? (std::string(" (head ") + HeadPrecisionName(fused_options.head) + ", " + activations + " activations)").c_str() : "",
                median(rates), reps, range(rates).c_str(), decode_floor, 100 * median(rates) / decode_floor);
  }
  return 0;
}
