// qlorad-tool: offline commands (model fixtures, logits, generation, tokenize,
// quantize, ...). Each subcommand lives in its own file; this is the dispatch table.
#include <cstdio>
#include <cstdlib>

#include <ATen/Parallel.h>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/util/cpu_runtime.h"
#include "server/tool/commands.h"

namespace {

struct Command {
  std::function<int(const qlorad::tool::Args&)> run;
  const char* help;
};

const std::map<std::string, Command>& CommandTable() {
  using namespace qlorad::tool;
  static const auto* table = new std::map<std::string, Command>{
      {"make-model", {RunMakeModel, "write a seeded random HF-format model directory"}},
      {"pretrain", {RunPretrain, "pretrain a small model (all weights) on text for a bounded time: HF directory"}},
      {"make-adapter", {RunMakeAdapter, "write a seeded random PEFT LoRA adapter for a model (fixtures)"}},
      {"logits", {RunLogits, "one forward pass; raw little-endian fp32 logits [tokens, vocab]"}},
      {"generate", {RunGenerate, "generate tokens from a prompt"}},
      {"choose-serve-head", {RunChooseServeHead, "hold-out check of each --serve-head precision vs fp32; picks one"}},
      {"train", {RunTrain, "train a LoRA/QLoRA adapter on a dataset's train split (PEFT output)"}},
      {"dpo-eval", {RunDpoEval, "score a preference dataset's hold-out with an adapter vs its base (reward accuracy)"}},
      {"plan", {RunPlan, "predict peak memory (breakdown) and fitting GPUs of a full/LoRA/QLoRA run"}},
      {"quantize", {RunQuantize, "write a bitsandbytes-layout NF4/FP4 copy of a model"}},
      {"tokenize", {RunTokenize, "JSON string per stdin line -> JSON array of token ids per line"}},
      {"prepare-data", {RunPrepareData, "ingest JSONL/CSV: validate, anonymise PII, split, checksum (core/data)"}},
      {"merge", {RunMerge, "merge a PEFT adapter into its base (onto dequant(NF4) or original): HF safetensors"}},
      {"export-gguf", {RunExportGguf, "model (+ LoRA adapter) as GGUF for llama.cpp/Ollama, with a Modelfile"}},
  };
  return *table;
}

void PrintUsage(std::FILE* to) {
  std::fprintf(to, "usage: qlorad-tool <command> [flags]   (qlorad-tool <command> --help)\n\ncommands:\n");
  for (const auto& [name, command] : CommandTable()) std::fprintf(to, "  %-18s %s\n", name.c_str(), command.help);
}

}  // namespace

int main(int argc, char** argv) {
  qlorad::ConfigureCpuRuntime(argv);
  if (argc < 2) {
    PrintUsage(stderr);
    return 2;
  }
  if (const std::string first = argv[1]; first == "--help" || first == "-h" || first == "help") {
    PrintUsage(stdout);
    return 0;
  }
  // ATen's own intra-op threads (OpenMP) default to what libtorch chose; OpenBLAS
  // threads each GEMM itself, and raising both oversubscribes the cores (measured:
  // decode 4x slower with 2+2 threads on 2 cores; tests/bench/RESULTS.md).
  if (const char* threads = std::getenv("QLORAD_THREADS")) at::set_num_threads(std::atoi(threads));
  auto it = CommandTable().find(argv[1]);
  if (it == CommandTable().end()) {
    std::fprintf(stderr, "qlorad-tool: unknown command '%s'\n", argv[1]);
    PrintUsage(stderr);
    return 2;
  }
  return it->second.run(qlorad::tool::Args(argv + 2, argv + argc));
}
