// Seeded, stratified, leakage-free train/hold-out split.
//
// Examples are grouped by a key (the hash of the normalised input side, see
// NormalizeNearDuplicate), and a whole group always goes to one side: no text appears in
// both splits. With stratification each label (the label of a group's first example) gets
// its own quota, fixed by largest remainder so the hold-out total is round(fraction * n)
// and every class is within one example of its share. Groups are shuffled per stratum with
// a seeded mt19937_64 and our own Fisher–Yates (std::shuffle differs between standard
// libraries), then taken while they fit the quota. Same inputs + seed -> same split on every
// platform.
#ifndef QLORAD_CORE_DATA_SPLIT_H_
#define QLORAD_CORE_DATA_SPLIT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace qlorad::data {

struct SplitOptions {
  double holdout_fraction = 0.15;  // allowed 0.10 .. 0.20
  uint64_t seed = 42;
  bool stratify = true;  // only meaningful when strata (labels) are given

  // INVALID_ARGUMENT naming holdout_fraction if outside [0.10, 0.20].
  absl::Status Validate() const;
  nlohmann::json ToJson() const;
};

class SplitPlanner {
 public:
  explicit SplitPlanner(const SplitOptions& options) : options_(options) {}

  // Adds example i (in order). `stratum` is the label for classification, "" otherwise.
  void Add(uint64_t group_key, const std::string& stratum);
  // One flag per added example: true = hold-out.
  std::vector<bool> Plan() const;
  size_t size() const { return group_of_.size(); }

 private:
  SplitOptions options_;
  absl::flat_hash_map<uint64_t, uint32_t> group_index_;
  std::vector<uint32_t> group_of_;       // per example
  std::vector<uint32_t> group_size_;     // per group
  std::vector<uint32_t> group_stratum_;  // per group
  std::map<std::string, uint32_t> strata_;
};

}  // namespace qlorad::data

#endif  // QLORAD_CORE_DATA_SPLIT_H_
