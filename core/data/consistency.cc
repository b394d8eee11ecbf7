#include "core/data/consistency.h"

#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/data/string_view_compat.h"

namespace qlorad::data {
namespace {

std::optional<double> Kappa(uint64_t n, uint64_t agreements, const std::map<std::string, uint64_t>& a,
                            const std::map<std::string, uint64_t>& b) {
  if (n == 0) return std::nullopt;
  double po = static_cast<double>(agreements) / n;
  double pe = 0;
  for (const auto& [label, count] : a) {
    auto it = b.find(label);
    if (it != b.end()) pe += (static_cast<double>(count) / n) * (static_cast<double>(it->second) / n);
  }
  if (std::fabs(1.0 - pe) < 1e-12) return std::nullopt;
  return (po - pe) / (1.0 - pe);
}

}  // namespace

std::string_view PolicyName(DisagreementPolicy policy) {
  switch (policy) {
    case DisagreementPolicy::kRefuse:
      return "refuse";
    case DisagreementPolicy::kPreferA:
      return "prefer_a";
    case DisagreementPolicy::kPreferB:
      return "prefer_b";
    case DisagreementPolicy::kDrop:
      return "drop";
  }
  return "unknown";
}

absl::StatusOr<DisagreementPolicy> ParsePolicyName(std::string_view name) {
  for (DisagreementPolicy p : {DisagreementPolicy::kRefuse, DisagreementPolicy::kPreferA, DisagreementPolicy::kPreferB,
                               DisagreementPolicy::kDrop}) {
    if (PolicyName(p) == name) return p;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown disagreement policy '", ToAbsl(name), "' (expected refuse, prefer_a, prefer_b or drop)"));
}

std::optional<double> CohenKappa(const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::map<std::string, uint64_t> a, b;
  uint64_t agree = 0;
  for (const auto& [x, y] : pairs) {
    ++a[x];
    ++b[y];
    agree += x == y;
  }
  return Kappa(pairs.size(), agree, a, b);
}

bool ConsistencyChecker::Resolve(Example* example) {
  if (example->format != DatasetFormat::kClassification || !example->label_a || !example->label_b) return true;
  ++report_.annotated;
  ++count_a_[*example->label_a];
  ++count_b_[*example->label_b];
  if (*example->label_a == *example->label_b) {
    ++report_.agreements;
    if (!example->resolution) example->label = *example->label_a;
    return true;
  }
  ++report_.disagreements;
  ConsistencyReport::Disagreement d{example->source_line, *example->label_a, *example->label_b, ""};
  bool keep = true;
  if (example->resolution && !example->resolution->empty()) {
    example->label = *example->resolution;
    ++report_.resolved_by_column;
    d.outcome = "column:" + example->label;
  } else {
    switch (policy_) {
      case DisagreementPolicy::kPreferA:
      case DisagreementPolicy::kPreferB:
        example->label = policy_ == DisagreementPolicy::kPreferA ? *example->label_a : *example->label_b;
        ++report_.resolved_by_policy;
        d.outcome = "policy:" + example->label;
        break;
      case DisagreementPolicy::kDrop:
        ++report_.dropped;
        d.outcome = "dropped";
        keep = false;
        break;
      case DisagreementPolicy::kRefuse:
        ++report_.unresolved;
        d.outcome = "unresolved";
        break;
    }
  }
  if (report_.listed.size() < max_listed_) report_.listed.push_back(std::move(d));
  return keep;
}

void ConsistencyChecker::AddNearDuplicateKey(uint64_t near_key, const Example& example) {
  if (example.format != DatasetFormat::kClassification) return;
  auto [it, inserted] = seen_.try_emplace(near_key, Seen{example.source_line, example.label});
  if (inserted || it->second.label == example.label) return;
  ++report_.near_duplicate_conflicts;
  if (report_.near_duplicates_listed.size() < max_listed_) {
    report_.near_duplicates_listed.push_back({it->second.line, example.source_line, it->second.label, example.label});
  }
}

ConsistencyReport ConsistencyChecker::Finish() const {
  ConsistencyReport r = report_;
  if (r.annotated > 0) r.percent_agreement = 100.0 * r.agreements / r.annotated;
  r.kappa = Kappa(r.annotated, r.agreements, count_a_, count_b_);
  return r;
}

absl::Status ConsistencyChecker::CheckResolved(const std::string& path) const {
  if (report_.unresolved == 0) return absl::OkStatus();
  std::vector<std::string> lines;
  for (const auto& d : report_.listed) {
    if (d.outcome == "unresolved") {
      lines.push_back(
          absl::StrCat(path, ":", d.line, ": field 'label_a'/'label_b': '", d.label_a, "' vs '", d.label_b, "'"));
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat(path, ": ", report_.unresolved,
                   " unresolved annotator disagreements (hint: add a 'resolution' column, or choose "
                   "a disagreement policy prefer_a, prefer_b or drop):\n  ",
                   absl::StrJoin(lines, "\n  ")));
}

nlohmann::json ConsistencyReport::ToJson() const {
  nlohmann::json j;
  j["annotated"] = annotated;
  j["agreements"] = agreements;
  j["percent_agreement"] = percent_agreement;
  j["cohen_kappa"] = kappa ? nlohmann::json(*kappa) : nlohmann::json();
  j["disagreements"] = {{"count", disagreements},
                        {"resolved_by_column", resolved_by_column},
                        {"resolved_by_policy", resolved_by_policy},
                        {"dropped", dropped},
                        {"unresolved", unresolved}};
  nlohmann::json listed_json = nlohmann::json::array();
  for (const auto& d : listed) {
    listed_json.push_back({{"line", d.line}, {"label_a", d.label_a}, {"label_b", d.label_b}, {"outcome", d.outcome}});
  }
  j["disagreements"]["listed"] = std::move(listed_json);
  nlohmann::json near = nlohmann::json::array();
  for (const auto& c : near_duplicates_listed) {
    near.push_back(
        {{"first_line", c.first_line}, {"line", c.line}, {"first_label", c.first_label}, {"label", c.label}});
  }
  j["near_duplicate_label_conflicts"] = {{"count", near_duplicate_conflicts}, {"listed", std::move(near)}};
  return j;
}

}  // namespace qlorad::data
