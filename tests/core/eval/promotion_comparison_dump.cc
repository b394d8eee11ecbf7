// Helper for tests/reference/promotion_gate_reference.py: for each case (references,
// candidate and serving outputs, labels, headline metric) builds the two adapter
// evaluation records the way EvaluationRunner does (same settings) and prints
// ComparePromotion's result as JSON; a case with "serving_settings" differing gives the
// refusal message. Usage: promotion_comparison_dump cases.json
#include <cstdio>
#include <iostream>

#include "core/eval/promotion_comparison.h"
#include "core/util/file_util.h"
#include "nlohmann/json.hpp"

using namespace qlorad::eval;  // NOLINT: small tool

namespace {

absl::StatusOr<EvaluationRecord> Record(const nlohmann::json& c, const char* outputs, const nlohmann::json& settings) {
  const auto refs = c.at("references").get<std::vector<std::string>>();
  std::vector<std::string> ids;
  for (size_t i = 0; i < refs.size(); ++i) ids.push_back("ex" + std::to_string(i));
  EvaluationInputs in{ids, refs, refs, c.at("baseline").get<std::vector<std::string>>(),
                      c.at(outputs).get<std::vector<std::string>>()};
  RecordOptions o;
  o.headline_metric = c.at("metric").get<std::string>();
  o.labels = c.at("labels").get<std::vector<std::string>>();
  o.record_id = std::string(outputs) + "-eval";
  o.adapter_id = outputs;
  o.dataset_id = "d";
  o.base_fingerprint = "base";
  o.holdout_checksum = "holdout";
  o.settings = settings;
  return BuildEvaluationRecord(in, o);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s cases.json\n", argv[0]);
    return 2;
  }
  auto text = qlorad::ReadFileToString(argv[1]);
  if (!text.ok()) return std::fprintf(stderr, "%s\n", text.status().ToString().c_str()), 1;
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : nlohmann::json::parse(*text)) {
    const nlohmann::json settings = {{"scoring", "log_likelihood"}, {"labels", c.at("labels")}};
    auto candidate = Record(c, "candidate", settings);
    auto serving = Record(c, "serving", c.value("serving_settings", settings));
    if (!candidate.ok() || !serving.ok()) {
      std::fprintf(stderr, "%s\n", (candidate.ok() ? serving.status() : candidate.status()).ToString().c_str());
      return 1;
    }
    auto cmp = ComparePromotion(*candidate, *serving);
    if (!cmp.ok()) {
      out.push_back({{"error", std::string(cmp.status().message())}});
      continue;
    }
    out.push_back({{"candidate_value", cmp->candidate_value}, {"serving_value", cmp->serving_value},
                   {"point", cmp->delta.point}, {"lower", cmp->delta.lower}, {"upper", cmp->delta.upper}});
  }
  std::cout << out.dump() << "\n";
  return 0;
}
