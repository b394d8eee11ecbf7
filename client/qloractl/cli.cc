#include "client/qloractl/cli.h"

#include <cstdio>
#include <cstdlib>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace qlorad::ctl {
namespace {

const std::set<std::string> kGlobalFlags = {"address", "token", "tls-ca", "tls-cert", "tls-key", "tls-server-name",
                                            "timeout", "o"};

}  // namespace

absl::StatusOr<Args> Args::Parse(const std::vector<std::string>& argv, const std::set<std::string>& bool_flags) {
  Args args;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.size() < 2 || a[0] != '-' || a == "-") {
      args.positionals_.push_back(a);
      continue;
    }
    std::string name = a.substr(a[1] == '-' ? 2 : 1), value;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (!bool_flags.count(name)) {
      if (i + 1 >= argv.size()) return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      value = argv[++i];
    }
    args.values_[name] = value;
    args.all_values_.emplace(name, value);
  }
  return args;
}

std::string Args::Get(const std::string& flag, const std::string& fallback) const {
  auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second;
}

std::vector<std::string> Args::All(const std::string& flag) const {
  std::vector<std::string> out;
  for (auto [it, end] = all_values_.equal_range(flag); it != end; ++it) out.push_back(it->second);
  return out;
}

absl::StatusOr<std::string> Args::Required(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end() || it->second.empty()) return absl::InvalidArgumentError(absl::StrCat("--", flag, " is required"));
  return it->second;
}

absl::StatusOr<double> Args::Number(const std::string& flag, double fallback) const {
  if (!Has(flag)) return fallback;
  double value = 0;
  if (!absl::SimpleAtod(Get(flag), &value))
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": '", Get(flag), "' is not a number"));
  return value;
}

absl::StatusOr<std::string> Args::Positional(size_t i, const std::string& what) const {
  if (i >= positionals_.size()) return absl::InvalidArgumentError(absl::StrCat("missing ", what));
  return positionals_[i];
}

absl::Status Args::CheckKnown(const std::set<std::string>& known) const {
  for (const auto& [name, value] : values_)
    if (!known.count(name) && !kGlobalFlags.count(name)) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
  return absl::OkStatus();
}

void Output::Message(const google::protobuf::Message& message) const {
  if (json) {
    std::string text;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(message, &text, options);
    std::fputs(text.c_str(), stdout);
    return;
  }
  const auto* reflection = message.GetReflection();
  const auto* descriptor = message.GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const auto* field = descriptor->field(i);
    if (field->is_repeated() || field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (absl::EndsWith(field->name(), "_json")) continue;  // long JSON: shown with -o json
    std::string value;
    switch (field->cpp_type()) {
      case google::protobuf::FieldDescriptor::CPPTYPE_STRING: value = reflection->GetString(message, field); break;
      case google::protobuf::FieldDescriptor::CPPTYPE_INT64: value = absl::StrCat(reflection->GetInt64(message, field)); break;
      case google::protobuf::FieldDescriptor::CPPTYPE_INT32: value = absl::StrCat(reflection->GetInt32(message, field)); break;
      case google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE: value = FormatDouble(reflection->GetDouble(message, field)); break;
      case google::protobuf::FieldDescriptor::CPPTYPE_BOOL: value = reflection->GetBool(message, field) ? "true" : "false"; break;
      default: continue;
    }
    if (!value.empty()) std::printf("%-20s %s\n", (field->name() + ":").c_str(), value.c_str());
  }
}

void Output::Table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) const {
  std::vector<size_t> widths(header.size());
  for (size_t c = 0; c < header.size(); ++c) widths[c] = header[c].size();
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size() && c < widths.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) absl::StrAppend(&line, absl::StrFormat("%-*s", static_cast<int>(widths[c]) + 2, row[c]));
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::puts(line.c_str());
  };
  print(header);
  for (const auto& row : rows) print(row);
}

absl::StatusOr<std::unique_ptr<client::Client>> ConnectFromArgs(const Args& args) {
  client::ClientOptions o;
  const char* env_address = std::getenv("QLORAD_ADDRESS");
  const char* env_token = std::getenv("QLORAD_TOKEN");
  o.address = args.Get("address", env_address ? env_address : "127.0.0.1:50051");
  o.token = args.Get("token", env_token ? env_token : "");
  o.tls_ca = args.Get("tls-ca");
  o.tls_cert = args.Get("tls-cert");
  o.tls_key = args.Get("tls-key");
  o.tls_server_name = args.Get("tls-server-name");
  auto timeout = args.Number("timeout", 3600);
  if (!timeout.ok()) return timeout.status();
  o.timeout_seconds = *timeout;
  return client::Client::Connect(o);
}

std::string FormatDouble(double value, int digits) { return absl::StrFormat("%.*f", digits, value); }

}  // namespace qlorad::ctl
