// qloractl's shared pieces: argument parsing (`--flag value`, `--flag=value`, boolean
// `--flag`, positionals), global connection options, and output (aligned tables by
// default, `-o json` for machine use).
#ifndef QLORAD_CLIENT_QLORACTL_CLI_H_
#define QLORAD_CLIENT_QLORACTL_CLI_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "absl/status/statusor.h"
#include "client/qlorad_client.h"

namespace qlorad::ctl {

class Args {
 public:
  // Flags in `bool_flags` take no value; every other --flag takes one.
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& argv, const std::set<std::string>& bool_flags);
  bool Has(const std::string& flag) const { return values_.count(flag) > 0; }
  std::string Get(const std::string& flag, const std::string& fallback = "") const;  // the last occurrence
  std::vector<std::string> All(const std::string& flag) const;                      // every occurrence, in order
  absl::StatusOr<std::string> Required(const std::string& flag) const;
  absl::StatusOr<double> Number(const std::string& flag, double fallback) const;
  // Positional i (0-based) or INVALID_ARGUMENT naming `what`.
  absl::StatusOr<std::string> Positional(size_t i, const std::string& what) const;
  const std::vector<std::string>& positionals() const { return positionals_; }
  // INVALID_ARGUMENT naming the first flag not in `known` (globals are always known).
  absl::Status CheckKnown(const std::set<std::string>& known) const;

 private:
  std::map<std::string, std::string> values_;
  std::multimap<std::string, std::string> all_values_;
  std::vector<std::string> positionals_;
};

struct Output {
  bool json = false;
  void Message(const google::protobuf::Message& message) const;  // json, or "key: value" lines
  void Table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) const;
};

absl::StatusOr<std::unique_ptr<client::Client>> ConnectFromArgs(const Args& args);

// One command: args after the verb words; returns the process exit status.
using Command = absl::Status (*)(const Args& args, client::Client& client, const Output& out);

absl::Status DatasetsCommand(const std::string& verb, const Args& args, client::Client& client, const Output& out);
absl::Status JobsCommand(const std::string& verb, const Args& args, client::Client& client, const Output& out);
absl::Status AdaptersCommand(const std::string& verb, const Args& args, client::Client& client, const Output& out);
absl::Status GenerateCommand(const Args& args, client::Client& client, const Output& out);
absl::Status ClassifyCommand(const Args& args, client::Client& client, const Output& out);
absl::Status EvalCommand(const Args& args, client::Client& client, const Output& out);
absl::Status ReviewsCommand(const std::string& verb, const Args& args, client::Client& client, const Output& out);
absl::Status AuditCommand(const Args& args, client::Client& client, const Output& out);

std::string FormatDouble(double value, int digits = 4);

}  // namespace qlorad::ctl

#endif  // QLORAD_CLIENT_QLORACTL_CLI_H_
