// Multi-adapter serving throughput and latency (issue 9), same run, same base:
//   serving_bench [--model-dir DIR] [--streams 32] [--new-tokens 64] [--prompt 32]
//                 [--quantize both|none|nf4] [--load-runs 30] [--threads N] [--repeats 2]
//                 [--scenarios 0,1,8,32,-32]  (0 base only, N distinct LoRA adapters, -N distinct DoRA)
//                 [--adapter-factors compute|bf16]  (EngineOptions::adapter_factors)
// Writes (once) a ~110M-parameter Llama with the packaged Llama-2 tokenizer, then per
// precision: 32 concurrent streams all on the base vs spread over 1, 8 and 32 distinct
// r=16 adapters (all linear layers) and over 32 distinct r=16 DoRA adapters, and a single stream; TTFT and inter-token latency
// p50/p99 of the 32-stream runs. The scenarios run in --repeats rounds (each round runs every
// scenario once); each reports its best run ("vs base": best over best) and the median over rounds
// of its rate over the same round's base-only rate ("paired"). Last, adapter load time for an r=16 all-linear adapter
// of a Llama-3.2-1B-shaped base (tensors validated against the base's module shapes).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/model/random_model.h"
#include "core/serve/random_adapter.h"
#include "core/serve/serving_engine.h"
#include "core/util/cpu_runtime.h"
#include "tests/bench/bench_args.h"
#include "tests/bench/serving_bench_model.h"

namespace qlorad::serve {
namespace {

using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

struct RunResult {
  double tokens_per_second = 0;
  std::vector<double> ttft, itl;
};

RunResult RunStreamsOnce(ServingEngine& engine, int streams, const std::vector<std::string>& adapters, int prompt,
                         int tokens) {
  std::mutex mu;
  RunResult result;
  std::vector<std::thread> threads;
  int64_t generated = 0;
  const auto start = Clock::now();
  for (int s = 0; s < streams; ++s)
    threads.emplace_back([&, s] {
      std::mt19937_64 rng(s);
      GenerateCall call;
      call.adapter_id = adapters.empty() ? "" : adapters[s % adapters.size()];
      call.prompt_ids = {1};
      while (static_cast<int>(call.prompt_ids.size()) < prompt) call.prompt_ids.push_back(3 + rng() % 31000);
      call.max_new_tokens = tokens;
      const auto begin = Clock::now();
      std::vector<double> stamps;
      auto out = engine.Generate(call, [&](const std::string&, int64_t) {
        stamps.push_back(std::chrono::duration<double>(Clock::now() - begin).count());
        return true;
      });
      if (!out.ok()) {
        std::fprintf(stderr, "generate failed: %s\n", out.status().ToString().c_str());
        std::exit(1);
      }
      std::lock_guard<std::mutex> lock(mu);
      generated += static_cast<int64_t>(out->tokens.size());
      if (!stamps.empty()) result.ttft.push_back(stamps[0]);
      for (size_t i = 1; i < stamps.size(); ++i) result.itl.push_back(stamps[i] - stamps[i - 1]);
    });
  for (auto& t : threads) t.join();
  result.tokens_per_second = generated / std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

int g_repeats = 2;
std::string g_adapter_factors = "compute";
// Scenarios of BenchPrecision (--scenarios): 0 = base only, N = N distinct LoRA adapters,
// -N = N distinct DoRA ones.
std::vector<int> g_scenarios;

// Best throughput of g_repeats runs (this machine's other load only ever slows a run down).
RunResult RunStreams(ServingEngine& engine, int streams, const std::vector<std::string>& adapters, int prompt, int tokens) {
  RunResult best;
  for (int i = 0; i < g_repeats; ++i) {
    RunResult r = RunStreamsOnce(engine, streams, adapters, prompt, tokens);
    if (r.tokens_per_second > best.tokens_per_second) best = std::move(r);
  }
  return best;
}

std::string ScenarioName(int distinct) {
  return distinct == 0  ? "base only"
         : distinct < 0 ? absl::StrCat(-distinct, " distinct DoRA adapters")
                        : absl::StrCat(distinct, " distinct adapters");
}

// Runs every scenario once per round, g_repeats rounds, so that slow drifts of the shared
// machine hit all scenarios alike. Per scenario: the best run, and the median over rounds of
// (its rate / the base-only rate of the same round) when the base is among the scenarios.
void RunScenarioRounds(ServingEngine& engine, int streams, int prompt, int tokens, const std::vector<std::string>& ids,
                       const std::vector<std::string>& dora_ids) {
  const size_t n = g_scenarios.size();
  std::vector<RunResult> best(n);
  std::vector<std::vector<double>> rates(n);
  for (int round = 0; round < g_repeats; ++round)
    for (size_t i = 0; i < n; ++i) {
      const int distinct = g_scenarios[i];
      const std::vector<std::string>& pool = distinct < 0 ? dora_ids : ids;
      std::vector<std::string> use(pool.begin(), pool.begin() + std::abs(distinct));
      RunResult r = RunStreamsOnce(engine, streams, use, prompt, tokens);
      rates[i].push_back(r.tokens_per_second);
      if (r.tokens_per_second > best[i].tokens_per_second) best[i] = std::move(r);
    }
  const auto base = std::find(g_scenarios.begin(), g_scenarios.end(), 0);
  const size_t base_index = static_cast<size_t>(base - g_scenarios.begin());
  for (size_t i = 0; i < n; ++i) {
    const RunResult& r = best[i];
    double best_ratio = 0, paired = 0;
    if (base != g_scenarios.end()) {
      best_ratio = r.tokens_per_second / best[base_index].tokens_per_second;
      std::vector<double> ratios;
      for (int round = 0; round < g_repeats; ++round) ratios.push_back(rates[i][round] / rates[base_index][round]);
      paired = bench::Median(ratios);
    }
    std::printf("%-28s %12.1f %8.2f %8.2f %8.1fms %8.1fms %8.1fms %8.1fms\n", ScenarioName(g_scenarios[i]).c_str(),
                r.tokens_per_second, best_ratio, paired, 1e3 * Percentile(r.ttft, 0.5), 1e3 * Percentile(r.ttft, 0.99),
                1e3 * Percentile(r.itl, 0.5), 1e3 * Percentile(r.itl, 0.99));
  }
  std::string runs;
  for (size_t i = 0; i < n; ++i) {
    absl::StrAppend(&runs, "  ", ScenarioName(g_scenarios[i]), ":");
    for (double rate : rates[i]) absl::StrAppend(&runs, " ", static_cast<int>(rate * 10 + 0.5) / 10.0);
    absl::StrAppend(&runs, "\n");
  }
  std::printf("tokens/s of each round:\n%s", runs.c_str());
}

void BenchPrecision(const std::string& model, const std::string& quantize, int streams, int prompt, int tokens) {
  EngineOptions options;
  options.model_dir = model;
  options.device = "cpu";
  options.quantize = quantize;
  options.prompt_format = "mistral";
  options.max_running = streams;
  options.kv_cache_bytes = 512ll << 20;
  options.adapter_factors = g_adapter_factors;
  auto engine = ServingEngine::Create(options);
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", engine.status().ToString().c_str());
    std::exit(1);
  }
  ModelConfig config = *LoadModelConfig(model);
  std::vector<std::string> ids, dora_ids;
  for (bool dora : {false, true})
    for (int i = 0; i < 32; ++i) {
      const std::string dir = absl::StrCat(model, "/../adapters/r16-", dora ? "dora-" : "", i);
      RandomAdapterOptions a;
      a.lora.r = 16;
      a.lora.use_dora = dora;
      a.seed = i;
      a.base_fingerprint = (*engine)->fingerprint();
      if (!std::filesystem::exists(dir + "/adapter_config.json") && !WriteRandomAdapter(dir, config, a).ok()) std::exit(1);
      std::vector<std::string>& list = dora ? dora_ids : ids;
      list.push_back(absl::StrCat(dora ? "dora" : "bench", i, "@1"));
      if (!(*engine)->LoadAdapter(list.back(), dir).ok()) std::exit(1);
    }
  RunStreamsOnce(**engine, 4, {}, prompt, 4);  // warm-up
  std::printf("\n[%s] %d streams x %d new tokens, prompt %d tokens, %d rounds, adapter factors %s\n", quantize.c_str(),
              streams, tokens, prompt, g_repeats, g_adapter_factors.c_str());
  std::printf("%-28s %12s %8s %8s %10s %10s %10s %10s\n", "scenario", "tokens/s", "vs base", "paired", "TTFT p50",
              "TTFT p99", "ITL p50", "ITL p99");
  RunScenarioRounds(**engine, streams, prompt, tokens, ids, dora_ids);
  RunResult single = RunStreams(**engine, 1, {}, prompt, tokens);
  RunResult single_adapter = RunStreams(**engine, 1, {ids[0]}, prompt, tokens);
  for (const auto& [name, r] : {std::pair<const char*, const RunResult*>{"single stream, base", &single},
                                {"single stream, adapter", &single_adapter}})
    std::printf("%-28s %12.1f %8s %8s %8.1fms %10s %8.1fms %8.1fms\n", name, r->tokens_per_second, "-", "-",
                1e3 * Percentile(r->ttft, 0.5), "-", 1e3 * Percentile(r->itl, 0.5), 1e3 * Percentile(r->itl, 0.99));
}

void BenchAdapterLoad(const std::string& work, int runs) {
  ModelConfig config = MakeConfig("llama", 16, 2048, 32, 8, 8192, 128256, true);  // Llama-3.2-1B shapes
  BaseModuleShapes shapes;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer)
    for (const std::string& module : LayerLinearModules(layer)) shapes[module] = LinearModuleShape(config, module);
  const std::string dir = work + "/adapter-1b-r16";
  RandomAdapterOptions a;
  a.lora.r = 16;
  if (!WriteRandomAdapter(dir, config, a).ok()) std::exit(1);
  std::vector<double> seconds;
  int64_t bytes = 0;
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    auto adapter = LoadServingAdapter(dir, "load@1", shapes, AdapterLoadOptions{});
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    if (!adapter.ok()) std::exit(1);
    bytes = (*adapter)->bytes;
  }
  std::printf("\nadapter load, r=16 on all 112 linear layers of a Llama-3.2-1B-shaped base (%.1f MB fp32), %d runs:\n"
              "  p50 %.1f ms, p99 %.1f ms (goal p99 <= 50 ms)\n",
              bytes / 1e6, runs, 1e3 * Percentile(seconds, 0.5), 1e3 * Percentile(seconds, 0.99));
}

}  // namespace
}  // namespace qlorad::serve

int main(int argc, char** argv) {
  qlorad::ConfigureCpuRuntime(argv);
  using qlorad::bench::Arg;
  const std::string work = Arg(argc, argv, "work-dir", "/tmp/qlorad-serving-bench");
  const std::string model = qlorad::bench::WriteServingBenchModel(Arg(argc, argv, "model-dir", work + "/model"));
  const int streams = std::stoi(Arg(argc, argv, "streams", "32"));
  const int tokens = std::stoi(Arg(argc, argv, "new-tokens", "64"));
  const int prompt = std::stoi(Arg(argc, argv, "prompt", "32"));
  const std::string quantize = Arg(argc, argv, "quantize", "both");
  qlorad::serve::g_repeats = std::stoi(Arg(argc, argv, "repeats", "2"));
  qlorad::serve::g_adapter_factors = Arg(argc, argv, "adapter-factors", "compute");
  for (absl::string_view n : absl::StrSplit(Arg(argc, argv, "scenarios", "0,1,8,32,-32"), ','))
    qlorad::serve::g_scenarios.push_back(std::stoi(std::string(n)));
  at::set_num_threads(std::stoi(Arg(argc, argv, "threads", std::to_string(std::thread::hardware_concurrency()))));
  std::printf("intra-op threads: %d\n", at::get_num_threads());
  if (quantize == "both" || quantize == "none") qlorad::serve::BenchPrecision(model, "none", streams, prompt, tokens);
  if (quantize == "both" || quantize == "nf4") qlorad::serve::BenchPrecision(model, "nf4", streams, prompt, tokens);
  qlorad::serve::BenchAdapterLoad(work, std::stoi(Arg(argc, argv, "load-runs", "30")));
  return 0;
}
