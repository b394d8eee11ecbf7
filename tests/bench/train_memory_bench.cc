// Training memory and throughput (issue 6): one process per configuration, so the
// peak RSS (getrusage) is that run's own. Prints the planner's prediction next to
// the measurement (core/train/memory_planner.h).
//   train_memory_bench --size 10M|100M|134M|1B|7B [--method qlora|lora] [--batch 1] [--seq 512]
//                      [--steps 2] [--gradient-checkpointing] [--checkpoint-keep none|attention|all]
//                      [--dora] [--work-dir DIR] [--threads N]
// The model is written once per size (bf16 safetensors, streamed) under --work-dir.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <ATen/ATen.h>

#include "core/model/random_model.h"
#include "core/quant/nf4_model.h"
#include "core/train/lora_model.h"
#include "core/train/memory_planner.h"
#include "core/train/trainer.h"
#include "core/util/cpu_runtime.h"
#include "tests/bench/bench_args.h"

namespace qlorad {
namespace {

int64_t PeakRssBytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

int64_t CurrentRssBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * 4096;
}

ModelConfig SizeConfig(const std::string& size) {
  if (size == "10M") return MakeConfig("llama", 4, 256, 4, 4, 688, 32000, true);
  if (size == "100M") return MakeConfig("llama", 12, 768, 12, 4, 2048, 32000, true);
  if (size == "134M") return MakeConfig("llama", 12, 768, 12, 12, 2048, 32000, false);  // train_vs_torch_eager.py
  if (size == "1B" || size == "7B") return *PresetModelConfig(size);
  std::fprintf(stderr, "--size must be 10M, 100M, 134M, 1B or 7B\n");
  std::exit(2);
}

void Die(const absl::Status& s) {
  std::fprintf(stderr, "%s\n", s.ToString().c_str());
  std::exit(1);
}

}  // namespace
}  // namespace qlorad

int main(int argc, char** argv) {
  qlorad::ConfigureCpuRuntime(argv);
  using namespace qlorad;
  using bench::Arg;
  const std::string size = Arg(argc, argv, "size", "10M"), method = Arg(argc, argv, "method", "qlora");
  const int64_t batch = std::stoll(Arg(argc, argv, "batch", "1")), seq = std::stoll(Arg(argc, argv, "seq", "512"));
  const int64_t steps = std::stoll(Arg(argc, argv, "steps", "2"));
  bool checkpointing = false, dora = false;
  for (int i = 1; i < argc; ++i) {
    checkpointing |= std::string(argv[i]) == "--gradient-checkpointing";
    dora |= std::string(argv[i]) == "--dora";
  }
  at::set_num_threads(std::stoi(Arg(argc, argv, "threads", std::to_string(std::thread::hardware_concurrency()))));
  const std::string dir = Arg(argc, argv, "work-dir", "/tmp/qlorad-train-bench") + "/" + size;
  ModelConfig config = SizeConfig(size);
  config.max_position_embeddings = std::max<int64_t>(seq, 2048);
  if (!std::filesystem::exists(dir + "/config.json")) {
    RandomModelOptions options;
    options.config = config;
    options.dtype = DType::kBF16;
    options.seed = 1;
    if (auto s = WriteRandomModel(dir, options); !s.ok()) Die(s);
  }
  const int64_t runtime_rss = CurrentRssBytes();
  LoraConfig lora;  // r=16, alpha 32, dropout 0.05, every linear layer
  lora.use_dora = dora;
  auto modules = std::make_shared<LoraModules>();
  LoadOptions load;
  load.compute_fingerprint = false;
  load.linear_factory = MakeLoraLinearFactory(
      lora, method == "qlora" ? MakeQuantizedLinearFactory(QuantOptions{}) : LinearFactory(), modules);
  auto loaded = LoadModel(dir, load);
  if (!loaded.ok()) Die(loaded.status());
  const int64_t loaded_rss = CurrentRssBytes();
  std::mt19937_64 rng(1);
  std::vector<TrainingExample> examples(batch * steps);
  for (auto& ex : examples) {
    for (int64_t t = 0; t < seq; ++t) ex.ids.push_back(3 + rng() % (config.vocab_size - 3));
    ex.trainable.assign(seq, 1);
    ex.trainable[0] = 0;
  }
  TrainerOptions options;
  options.epochs = 1;
  options.batch_size = batch;
  options.max_seq_len = seq;
  options.gradient_checkpointing = checkpointing;
  options.checkpoint_keep = Arg(argc, argv, "checkpoint-keep", "none");
  auto summary = TrainLora(loaded->model, *modules, examples, options);
  if (!summary.ok()) Die(summary.status());
  const int64_t peak = PeakRssBytes();

  PlanInput plan_input;
  plan_input.config = config;
  plan_input.method = method;
  plan_input.lora = lora;
  plan_input.batch = batch;
  plan_input.seq_len = seq;
  plan_input.gradient_checkpointing = checkpointing;
  plan_input.checkpoint_keep = options.checkpoint_keep;
  plan_input.device = "cpu";
  auto plan = PlanMemory(plan_input);
  if (!plan.ok()) Die(plan.status());
  const double tokens_per_second = summary->tokens_seen / summary->wall_seconds;
  std::printf("%s %s (%.0fM params) batch %lld seq %lld%s: %.1f tokens/s, RSS runtime %.0f MB, after load %.0f MB, "
              "peak %.0f MB; planner %.0f MB (%+.1f%%)\n",
              size.c_str(), method.c_str(), config.ParameterCount() / 1e6, static_cast<long long>(batch),
              static_cast<long long>(seq), (std::string(checkpointing ? " +gc" : "") + (dora ? " dora" : "")).c_str(),
              tokens_per_second, runtime_rss / 1e6,
              loaded_rss / 1e6, peak / 1e6, plan->total_bytes / 1e6, 100.0 * (plan->total_bytes - peak) / peak);
  std::printf("%s", FormatPlan(plan_input, *plan).c_str());
  return 0;
}
