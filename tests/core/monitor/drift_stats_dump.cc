// Test helper for tests/reference/drift_reference.py: reads cases as JSON on
// stdin, prints the C++ results as JSON on stdout.
//   in:  {"psi":[{"ref":[..],"cur":[..]}], "js":[{"p":[..],"q":[..]}],
//         "quantile":[{"values":[..],"bins":B}],
//         "profiles":[{"reference":[[ids..]..], "window":[[ids..]..],
//                      "top_k":K, "length_bins":B, "rare_min_count":M}]}
//   out: {"psi":[v|null..], "js":[v|null..], "quantile":[[cuts..]..],
//         "profiles":[{"top_ids":[..], "token_counts":[..], "cut_points":[..],
//                      "length_counts":[..], "reference_rare_rate":r,
//                      "report":{DriftReport JSON}}]}
// Errors (a null entry) are reported, not fatal, so invalid inputs can be
// tested too.
#include <iostream>
#include <iterator>
#include <string>

#include <nlohmann/json.hpp>

#include "core/monitor/drift_profile.h"
#include "core/monitor/drift_report.h"
#include "core/monitor/drift_stats.h"

namespace {

using Json = nlohmann::json;
using namespace qlorad::monitor;  // NOLINT: a .cc test helper

std::vector<PromptSample> Prompts(const Json& j) {
  std::vector<PromptSample> out;
  for (const auto& ids : j) out.push_back(PromptSample{ids.get<std::vector<int32_t>>(), {}});
  return out;
}

}  // namespace

int main() {
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  Json in = Json::parse(input);
  Json out = {{"psi", Json::array()}, {"js", Json::array()}, {"quantile", Json::array()},
              {"profiles", Json::array()}};
  for (const auto& c : in.value("psi", Json::array())) {
    auto v = PopulationStabilityIndex(c.at("ref").get<std::vector<double>>(),
                                      c.at("cur").get<std::vector<double>>());
    out["psi"].push_back(v.ok() ? Json(*v) : Json(nullptr));
  }
  for (const auto& c : in.value("js", Json::array())) {
    auto v = JensenShannonDistance(c.at("p").get<std::vector<double>>(),
                                   c.at("q").get<std::vector<double>>());
    out["js"].push_back(v.ok() ? Json(*v) : Json(nullptr));
  }
  for (const auto& c : in.value("quantile", Json::array())) {
    out["quantile"].push_back(
        QuantileCutPoints(c.at("values").get<std::vector<double>>(), c.at("bins").get<int>()));
  }
  for (const auto& c : in.value("profiles", Json::array())) {
    DriftProfileOptions options;
    options.top_k = c.at("top_k").get<int>();
    options.length_bins = c.at("length_bins").get<int>();
    options.rare_min_count = c.at("rare_min_count").get<int>();
    auto profile = DriftProfile::Build(Prompts(c.at("reference")), options);
    if (!profile.ok()) {
      std::cerr << profile.status() << "\n";
      out["profiles"].push_back(nullptr);
      continue;
    }
    auto report = CompareToProfile(*profile, Prompts(c.at("window")));
    if (!report.ok()) {
      std::cerr << report.status() << "\n";
      out["profiles"].push_back(nullptr);
      continue;
    }
    out["profiles"].push_back({{"top_ids", profile->top_token_ids()},
                               {"token_counts", profile->token_counts()},
                               {"cut_points", profile->length_cut_points()},
                               {"length_counts", profile->length_counts()},
                               {"reference_rare_rate", profile->reference_rare_rate()},
                               {"report", Json::parse(report->ToJson())}});
  }
  std::cout << out.dump() << "\n";
  return 0;
}
