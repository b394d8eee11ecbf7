#include "core/data/split.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/data/example.h"

namespace qlorad::data {

absl::Status SplitOptions::Validate() const {
  if (!(holdout_fraction >= 0.10 - 1e-12 && holdout_fraction <= 0.20 + 1e-12)) {
    return absl::InvalidArgumentError(
        absl::StrCat("holdout_fraction ", holdout_fraction, " is outside the allowed 0.10-0.20 (default 0.15)"));
  }
  return absl::OkStatus();
}

nlohmann::json SplitOptions::ToJson() const {
  return {{"holdout_fraction", holdout_fraction},
          {"seed", seed},
          {"stratify", stratify},
          {"method", "group by normalised input, largest-remainder quotas per label, mt19937_64 Fisher-Yates"}};
}

void SplitPlanner::Add(uint64_t group_key, const std::string& stratum) {
  auto [sit, new_stratum] =
      strata_.try_emplace(options_.stratify ? stratum : std::string(), static_cast<uint32_t>(strata_.size()));
  (void)new_stratum;
  auto [git, inserted] = group_index_.try_emplace(group_key, static_cast<uint32_t>(group_size_.size()));
  if (inserted) {
    group_size_.push_back(0);
    group_stratum_.push_back(sit->second);
  }
  ++group_size_[git->second];
  group_of_.push_back(git->second);
}

std::vector<bool> SplitPlanner::Plan() const {
  const size_t n = group_of_.size();
  // Stratum sizes (in examples) and largest-remainder quotas.
  std::vector<uint64_t> stratum_size(strata_.size(), 0);
  for (size_t g = 0; g < group_size_.size(); ++g) stratum_size[group_stratum_[g]] += group_size_[g];
  const uint64_t total_target = static_cast<uint64_t>(std::llround(options_.holdout_fraction * n));
  std::vector<uint64_t> quota(strata_.size());
  std::vector<std::pair<double, uint32_t>> remainders;
  uint64_t assigned = 0;
  for (uint32_t s = 0; s < strata_.size(); ++s) {
    double exact = options_.holdout_fraction * stratum_size[s];
    quota[s] = static_cast<uint64_t>(std::floor(exact));
    assigned += quota[s];
    remainders.push_back({exact - quota[s], s});
  }
  std::sort(remainders.begin(), remainders.end(),
            [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  for (size_t i = 0; assigned < total_target && i < remainders.size(); ++i, ++assigned) ++quota[remainders[i].second];

  // Per stratum (in label order, independent of input order): shuffle groups, fill the quota.
  std::vector<bool> group_holdout(group_size_.size(), false);
  std::vector<std::vector<uint32_t>> groups_of_stratum(strata_.size());
  for (uint32_t g = 0; g < group_size_.size(); ++g) groups_of_stratum[group_stratum_[g]].push_back(g);
  for (const auto& [name, s] : strata_) {
    std::vector<uint32_t>& groups = groups_of_stratum[s];
    std::mt19937_64 rng(options_.seed ^ StableHash64(name));
    for (size_t i = groups.size(); i > 1; --i) {
      size_t j = static_cast<size_t>(rng() % i);
      std::swap(groups[i - 1], groups[j]);
    }
    uint64_t taken = 0;
    for (uint32_t g : groups) {
      if (taken >= quota[s]) break;
      if (taken + group_size_[g] > quota[s]) continue;
      group_holdout[g] = true;
      taken += group_size_[g];
    }
  }
  std::vector<bool> holdout(n);
  for (size_t i = 0; i < n; ++i) holdout[i] = group_holdout[group_of_[i]];
  return holdout;
}

}  // namespace qlorad::data
