// Prefill and decode throughput of the decoder on CPU (or --device), next to
// this machine's measured fp32 GEMM rate and memory bandwidth, which bound them:
//   prefill ≤ GEMM FLOP/s / (2 · params) tokens/s,  decode ≤ bandwidth / weight bytes.
// Usage: model_bench [--model DIR] [--device cpu] [--prompt 512] [--decode 64] [--threads N]
// --threads sets ATen's intra-op threads (default 1: OpenBLAS threads GEMMs itself).
// Without --model it writes a ~100M-parameter Llama-shaped model to a temp dir.
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
#include "core/model/loader.h"
#include "tests/bench/bench_args.h"
#include "core/model/random_model.h"

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

}  // namespace

int main(int argc, char** argv) {
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
    options.config = MakeConfig("llama", 12, 768, 12, 4, 2048, 32000, /*tie=*/false);
    options.seed = 1;
    if (!std::filesystem::exists(model_dir + "/config.json")) {
      auto status = WriteRandomModel(model_dir, options);
      if (!status.ok()) return std::fprintf(stderr, "%s\n", std::string(status.message()).c_str()), 1;
    }
  }
  LoadOptions load;
  load.device = *device;
  load.compute_fingerprint = false;
  auto loaded = LoadModel(model_dir, load);
  if (!loaded.ok()) return std::fprintf(stderr, "%s\n", std::string(loaded.status().message()).c_str()), 1;
  const ModelConfig& config = loaded->config;
  const double params = static_cast<double>(config.ParameterCount());
  // Bytes read per decoded token: every weight once (embeddings: one row, ignored).
  const double weight_bytes = (params - config.vocab_size * config.hidden_size * (config.tie_word_embeddings ? 0 : 1)) * 4;

  const double gflops = GemmGflops(*device), bandwidth = MemcpyGBps();
  at::NoGradGuard no_grad;
  auto ids = at::randint(0, config.vocab_size, {1, prompt}, at::TensorOptions().dtype(at::kLong));
  auto cache = loaded->model->NewCache(1, prompt + decode);
  loaded->model->forward({ids.narrow(1, 0, 16), {}, {}, cache.get()});  // warm-up
  cache->Reset();
  auto start = Clock::now();
  at::Tensor logits = loaded->model->forward({ids, {}, {}, cache.get()});
  const double prefill_s = Seconds(start);
  at::Tensor next = logits[0][-1].argmax().view({1, 1});
  start = Clock::now();
  for (int64_t i = 0; i < decode; ++i) next = loaded->model->forward({next, {}, {}, cache.get()})[0][-1].argmax().view({1, 1});
  const double decode_s = Seconds(start);

  std::printf("model: %s, %.1fM parameters, %d threads, device %s\n", model_dir.c_str(), params / 1e6,
              at::get_num_threads(), device->str().c_str());
  std::printf("machine: fp32 GEMM 1024^3 %.1f GFLOP/s, memcpy %.1f GB/s (read+write)\n", gflops, bandwidth);
  std::printf("prefill %lld tokens: %.1f tokens/s (GEMM floor %.1f tokens/s, %.0f%% of it)\n",
              static_cast<long long>(prompt), prompt / prefill_s, gflops * 1e9 / (2 * params),
              100 * (prompt / prefill_s) / (gflops * 1e9 / (2 * params)));
  std::printf("decode %lld tokens: %.1f tokens/s (bandwidth floor %.1f tokens/s, %.0f%% of it)\n",
              static_cast<long long>(decode), decode / decode_s, bandwidth * 1e9 / weight_bytes,
              100 * (decode / decode_s) / (bandwidth * 1e9 / weight_bytes));
  return 0;
}
