// A minimal flag parser for qlorad-tool subcommands: `--name value`,
// `--name=value` and boolean `--name`. Unknown flags are an error that names them.
#ifndef QLORAD_SERVER_TOOL_FLAGS_H_
#define QLORAD_SERVER_TOOL_FLAGS_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace qlorad::tool {

class Flags {
 public:
  // `value_flags` take a value; `bool_flags` do not. Positional arguments are kept in order.
  static absl::StatusOr<Flags> Parse(const std::vector<std::string>& args,
                                     const std::set<std::string>& value_flags,
                                     const std::set<std::string>& bool_flags);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  bool GetBool(const std::string& name) const { return Has(name); }
  // INVALID_ARGUMENT naming the flag if absent.
  absl::StatusOr<std::string> GetRequired(const std::string& name) const;
  std::string GetOr(const std::string& name, const std::string& fallback) const;
  absl::StatusOr<long long> GetInt(const std::string& name, std::optional<long long> fallback) const;
  absl::StatusOr<double> GetDouble(const std::string& name, std::optional<double> fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// Parses "1,5,9" into integers; INVALID_ARGUMENT naming `flag` on a bad item.
absl::StatusOr<std::vector<long long>> ParseIntList(const std::string& flag, const std::string& text);

}  // namespace qlorad::tool

#endif  // QLORAD_SERVER_TOOL_FLAGS_H_
