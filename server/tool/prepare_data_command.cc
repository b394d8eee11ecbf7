// qlorad-tool prepare-data: ingest a JSONL/CSV file into a dataset store (core/data):
// validation, PII anonymisation, label consistency, seeded hold-out split, checksums and a
// manifest. Prints a JSON summary (counts and line numbers only, never PII values).
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/data/dataset_store.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/status_macros.h"
#include "server/tool/commands.h"
#include "server/tool/flags.h"

namespace qlorad::tool {
namespace {

constexpr char kUsage[] =
    "usage: qlorad-tool prepare-data --source FILE --root DIR --id DATASET_ID\n"
    "         [--format auto|alpaca|chat|prompt_completion|classification|preference] [--csv]\n"
    "         [--holdout 0.15] [--seed 42] [--no-stratify] [--max-errors 20] [--max-line-bytes N]\n"
    "         [--tokenizer PATH] [--max-seq-len 2048] [--labels a,b,...] [--target-regex RE]\n"
    "         [--json-template JSON] [--disagreement refuse|prefer_a|prefer_b|drop] [--allow-small]\n"
    "         [--no-pii] [--pii-disable TYPE,...] [--pii-pattern NAME=REGEX]\n";

absl::Status PrepareData(const Args& args) {
  QLORAD_ASSIGN_OR_RETURN(
      Flags flags, Flags::Parse(args,
                                {"source", "root", "id", "format", "holdout", "seed", "max-errors", "max-line-bytes",
                                 "tokenizer", "max-seq-len", "labels", "target-regex", "json-template", "disagreement",
                                 "pii-disable", "pii-pattern"},
                                {"csv", "no-stratify", "allow-small", "no-pii", "help"}));
  if (flags.GetBool("help")) {
    std::fputs(kUsage, stdout);
    return absl::OkStatus();
  }
  data::IngestOptions o;
  QLORAD_ASSIGN_OR_RETURN(o.source_path, flags.GetRequired("source"));
  QLORAD_ASSIGN_OR_RETURN(std::string root, flags.GetRequired("root"));
  QLORAD_ASSIGN_OR_RETURN(o.dataset_id, flags.GetRequired("id"));
  QLORAD_ASSIGN_OR_RETURN(o.reader.format, data::ParseFormatName(flags.GetOr("format", "auto")));
  o.reader.csv = flags.GetBool("csv");
  QLORAD_ASSIGN_OR_RETURN(long long max_errors, flags.GetInt("max-errors", 20));
  QLORAD_ASSIGN_OR_RETURN(long long max_line, flags.GetInt("max-line-bytes", 8 << 20));
  if (max_errors < 1 || max_line < 16)
    return absl::InvalidArgumentError("--max-errors must be >= 1, --max-line-bytes >= 16");
  o.reader.max_errors = static_cast<size_t>(max_errors);
  o.reader.max_line_bytes = static_cast<size_t>(max_line);
  QLORAD_ASSIGN_OR_RETURN(o.split.holdout_fraction, flags.GetDouble("holdout", 0.15));
  QLORAD_ASSIGN_OR_RETURN(long long seed, flags.GetInt("seed", 42));
  o.split.seed = static_cast<uint64_t>(seed);
  o.split.stratify = !flags.GetBool("no-stratify");
  QLORAD_ASSIGN_OR_RETURN(long long max_seq, flags.GetInt("max-seq-len", 2048));
  o.validation.max_seq_len = static_cast<size_t>(std::max(1LL, max_seq));
  std::shared_ptr<tokenizer::Tokenizer> tok;
  if (flags.Has("tokenizer")) {
    QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> loaded,
                            tokenizer::Tokenizer::Load(flags.GetOr("tokenizer", "")));
    tok = std::move(loaded);
    data::TokenCounter estimate = data::EstimateTokenCounter();
    o.validation.token_counter = {absl::StrCat("tokenizer:", flags.GetOr("tokenizer", "")),
                                  [tok, estimate](std::string_view text) -> size_t {
                                    auto ids = tok->Encode(text, /*add_special_tokens=*/false);
                                    return ids.ok() ? ids->size() : estimate.count(text);
                                  }};
  }
  if (flags.Has("labels")) o.validation.label_set = absl::StrSplit(flags.GetOr("labels", ""), ',', absl::SkipEmpty());
  o.validation.target_regex = flags.GetOr("target-regex", "");
  if (flags.Has("json-template")) {
    nlohmann::json t = nlohmann::json::parse(flags.GetOr("json-template", ""), nullptr, false);
    if (t.is_discarded()) return absl::InvalidArgumentError("--json-template is not valid JSON");
    o.validation.json_template = t;
  }
  QLORAD_ASSIGN_OR_RETURN(o.disagreement_policy, data::ParsePolicyName(flags.GetOr("disagreement", "refuse")));
  o.allow_small_dataset = flags.GetBool("allow-small");
  o.pii.enabled = !flags.GetBool("no-pii");
  if (flags.Has("pii-disable"))
    o.pii.disabled_types = absl::StrSplit(flags.GetOr("pii-disable", ""), ',', absl::SkipEmpty());
  if (flags.Has("pii-pattern")) {
    std::string spec = flags.GetOr("pii-pattern", "");
    size_t eq = spec.find('=');
    if (eq == std::string::npos) return absl::InvalidArgumentError("--pii-pattern must be NAME=REGEX");
    o.pii.user_patterns.push_back({spec.substr(0, eq), spec.substr(eq + 1)});
  }

  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<data::DatasetStore> store, data::DatasetStore::Open(root));
  QLORAD_ASSIGN_OR_RETURN(data::IngestResult r, store->Ingest(o));
  nlohmann::json summary = {{"dataset_id", r.dataset_id},
                            {"directory", r.directory},
                            {"format", r.manifest["format"]},
                            {"source_sha256", r.manifest["source"]["sha256"]},
                            {"train_examples", r.train_examples},
                            {"holdout_examples", r.holdout_examples},
                            {"regime", r.validation.regime},
                            {"warnings", r.validation.warnings},
                            {"small_dataset_override_used", r.manifest["overrides"]["small_dataset_override_used"]},
                            {"pii", r.pii.ToJson()},
                            {"label_consistency", r.consistency.ToJson()}};
  std::printf("%s\n", summary.dump(2).c_str());
  return absl::OkStatus();
}

}  // namespace

int RunPrepareData(const Args& args) { return ReportStatus("prepare-data", PrepareData(args)); }

}  // namespace qlorad::tool
