// Helper for tests/reference/eval_reference.py: reads a JSON file of cases, writes the
// C++ results as JSON to stdout. Usage: eval_reference_dump cases.json
#include <cstdio>
#include <iostream>

#include "core/eval/bootstrap.h"
#include "core/eval/classification.h"
#include "core/eval/porter_stemmer.h"
#include "core/eval/review.h"
#include "core/eval/rouge.h"
#include "core/eval/text_metrics.h"
#include "core/util/file_util.h"
#include "nlohmann/json.hpp"

using namespace qlorad::eval;  // NOLINT: small tool

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s cases.json\n", argv[0]);
    return 2;
  }
  auto text = qlorad::ReadFileToString(argv[1]);
  if (!text.ok()) {
    std::fprintf(stderr, "%s\n", text.status().ToString().c_str());
    return 1;
  }
  const nlohmann::json cases = nlohmann::json::parse(*text);
  nlohmann::json out;
  for (const auto& c : cases.value("classification", nlohmann::json::array())) {
    const auto truth = c.at("truth").get<std::vector<std::string>>();
    const auto pred = c.at("pred").get<std::vector<std::string>>();
    auto r = c.contains("labels") ? ComputeClassificationReport(truth, pred, c["labels"].get<std::vector<std::string>>())
                                  : ComputeClassificationReport(truth, pred);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    out["classification"].push_back(ClassificationReportToJson(*r));
  }
  for (const auto& c : cases.value("rouge", nlohmann::json::array())) {
    const bool stem = c.at("stem").get<bool>();
    const RougeScore l = RougeL(c.at("target").get<std::string>(), c.at("prediction").get<std::string>(), stem);
    out["rouge"].push_back({{"tokens", RougeTokenize(c.at("prediction").get<std::string>(), stem)},
                            {"precision", l.precision},
                            {"recall", l.recall},
                            {"fmeasure", l.fmeasure}});
  }
  for (const auto& w : cases.value("stem", nlohmann::json::array())) out["stem"].push_back(PorterStem(w.get<std::string>()));
  for (const auto& c : cases.value("squad", nlohmann::json::array())) {
    const auto p = c.at("prediction").get<std::string>(), r = c.at("reference").get<std::string>();
    out["squad"].push_back({{"em", ExactMatch(p, r)}, {"f1", TokenF1(p, r)}});
  }
  for (const auto& c : cases.value("kappa", nlohmann::json::array())) {
    auto k = CohenKappa(c.at("a").get<std::vector<std::string>>(), c.at("b").get<std::vector<std::string>>());
    out["kappa"].push_back(k ? nlohmann::json(*k) : nlohmann::json(nullptr));
  }
  for (const auto& c : cases.value("percentile", nlohmann::json::array())) {
    out["percentile"].push_back(Percentile(c.at("values").get<std::vector<double>>(), c.at("q").get<double>()));
  }
  std::cout << out.dump() << "\n";
  return 0;
}
