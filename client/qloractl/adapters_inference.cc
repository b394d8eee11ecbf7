// qloractl adapters ..., generate, classify, eval.
#include <cstdio>

#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/qloractl/cli.h"
#include "nlohmann/json.hpp"

namespace qlorad::ctl {
namespace {

namespace v1 = ::qlorad::v1;

std::vector<std::string> AdapterRow(const v1::Adapter& a) {
  const std::string loaded = !a.load_error().empty() ? "unloadable"
                             : !a.loaded()           ? "no"
                                                     : absl::StrCat(a.residency(), a.pinned() ? ",pinned" : "");
  return {a.adapter_id(), a.state(), loaded,
          a.aliases().empty() ? "-" : absl::StrJoin(a.aliases(), ","), a.dataset_id(), a.created_at()};
}
const std::vector<std::string> kAdapterHeader = {"ID", "STATE", "LOADED", "ALIASES", "DATASET", "CREATED"};

absl::Status PrintAdapter(const absl::StatusOr<v1::Adapter>& a, const Output& out) {
  if (!a.ok()) return a.status();
  if (out.json) out.Message(*a); else out.Table(kAdapterHeader, {AdapterRow(*a)});
  return absl::OkStatus();
}

// The gate's verdict: its one-line message (or the message as JSON); a refusal is an
// error exit (FAILED_PRECONDITION) so that a CI step can run `check-promotion`.
absl::Status PrintPromotionCheck(const absl::StatusOr<v1::PromotionCheck>& check, const Output& out) {
  if (!check.ok()) return check.status();
  if (out.json) out.Message(*check); else if (check->passed()) std::printf("%s\n", check->message().c_str());
  return check->passed() ? absl::OkStatus() : absl::FailedPreconditionError(check->message());
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::string text;
  char buffer[65536];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0) text.append(buffer, n);
  std::fclose(f);
  return text;
}

// --evidence EVAL_ID (repeatable) and --review-summary FILE (the summary JSON) record the
// evidence the decider saw.
absl::StatusOr<v1::DecisionRequest> Decision(const std::string& ref, const Args& args) {
  v1::DecisionRequest r;
  r.set_adapter(ref);
  r.set_note(args.Get("note"));
  r.set_risk_class(args.Get("risk-class", "minimal"));
  r.set_documentation_ref(args.Get("documentation-ref"));
  for (const std::string& id : args.All("evidence")) r.add_evidence_evaluation_ids(id);
  if (args.Has("review-summary")) {
    auto text = ReadText(args.Get("review-summary"));
    if (!text.ok()) return text.status();
    r.set_evidence_review_summary_json(*text);
  }
  return r;
}

absl::Status Decide(const std::string& ref, bool approve, const Args& args, client::Client& client, const Output& out) {
  auto request = Decision(ref, args);
  if (!request.ok()) return request.status();
  return PrintAdapter(approve ? client.ApproveAdapter(*request) : client.RejectAdapter(*request), out);
}

}  // namespace

absl::Status AdaptersCommand(const std::string& verb, const Args& args, client::Client& client, const Output& out) {
  if (verb == "list") {
    auto list = client.ListAdapters(static_cast<int>(args.Number("page-size", 100).value_or(100)), args.Get("page-token"));
    if (!list.ok()) return list.status();
    if (out.json) return out.Message(*list), absl::OkStatus();
    std::vector<std::vector<std::string>> rows;
    for (const auto& a : list->adapters()) rows.push_back(AdapterRow(a));
    out.Table(kAdapterHeader, rows);
    return absl::OkStatus();
  }
  if (verb == "import") {  // qloractl adapters import NAME SERVER_PATH
    auto name = args.Positional(0, "NAME");
    auto path = args.Positional(1, "PATH (PEFT directory on the server host)");
    if (!name.ok()) return name.status();
    if (!path.ok()) return path.status();
    return PrintAdapter(client.ImportAdapter(*name, *path, args.Has("allow-base-mismatch")), out);
  }
  if (verb == "upload") {  // qloractl adapters upload LOCAL_DIR --name NAME
    auto dir = args.Positional(0, "DIR (local PEFT adapter directory)");
    auto name = args.Required("name");
    if (!dir.ok()) return dir.status();
    if (!name.ok()) return name.status();
    return PrintAdapter(client.UploadAdapter(*dir, *name, args.Has("allow-base-mismatch")), out);
  }
  auto ref = args.Positional(0, "ADAPTER (name@version or alias)");
  if (!ref.ok()) return ref.status();
  if (verb == "get") return PrintAdapter(client.GetAdapter(*ref), out);
  if (verb == "load") return PrintAdapter(client.LoadAdapter(*ref, args.Has("allow-base-mismatch"), args.Has("pin")), out);
  if (verb == "unload") return PrintAdapter(client.UnloadAdapter(*ref), out);
  if (verb == "approve") return Decide(*ref, true, args, client, out);
  if (verb == "reject") return Decide(*ref, false, args, client, out);
  if (verb == "delete") return client.DeleteAdapter(*ref);
  if (verb == "promote" || verb == "check-promotion") {
    auto alias = args.Positional(1, "ALIAS");
    if (!alias.ok()) return alias.status();
    if (verb == "check-promotion") return PrintPromotionCheck(client.CheckPromotion(*ref, *alias), out);
    absl::StatusOr<v1::Adapter> promoted = client.PromoteAdapter(*ref, *alias, args.Get("override-reason"));
    if (absl::Status printed = PrintAdapter(promoted, out); !printed.ok()) return printed;
    if (!out.json) std::printf("%s%s\n", promoted->promotion().message().c_str(),
                               promoted->promotion().overridden() ? " -- overridden, reason recorded in the audit log" : "");
    return absl::OkStatus();
  }
  if (verb == "export") {  // downloads the PEFT adapter directory, or its GGUF export
    auto dir = args.Required("out");
    if (!dir.ok()) return dir.status();
    v1::ExportAdapterRequest request;
    request.set_adapter(*ref);
    request.set_format(args.Get("format", "peft"));
    request.set_type(args.Get("type"));
    request.set_merge(args.Has("merge"));
    auto names = client.ExportAdapter(request, *dir);
    if (!names.ok()) return names.status();
    std::printf("exported %s to %s: %s\n", ref->c_str(), dir->c_str(), absl::StrJoin(*names, ", ").c_str());
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown verb 'adapters ", verb,
      "' (list|get|import|upload|load|unload|approve|reject|promote|check-promotion|delete|export)"));
}

absl::Status GenerateCommand(const Args& args, client::Client& client, const Output& out) {
  if (auto s = args.CheckKnown({"adapter", "prompt", "input", "raw", "max-new-tokens", "temperature", "top-p", "top-k", "seed",
                                "stream", "stop", "json-schema", "json-object", "choice", "regex"});
      !s.ok())
    return s;
  v1::GenerateRequest r;
  auto prompt = args.Required("prompt");
  if (!prompt.ok()) return prompt.status();
  r.set_adapter(args.Get("adapter"));
  r.set_prompt(*prompt);
  r.set_input(args.Get("input"));
  r.set_raw_prompt(args.Has("raw"));
  r.set_max_new_tokens(static_cast<int32_t>(args.Number("max-new-tokens", 0).value_or(0)));  // 0: the daemon's default
  r.set_temperature(args.Number("temperature", 0).value_or(0));
  r.set_top_p(args.Number("top-p", 1).value_or(1));
  r.set_top_k(static_cast<int32_t>(args.Number("top-k", 0).value_or(0)));
  r.set_seed(static_cast<uint64_t>(args.Number("seed", 0).value_or(0)));
  for (const auto& stop : args.All("stop")) r.add_stop(stop);
  // Structured output: --json-schema FILE (a JSON schema), --json-object, --choice a,b,c, --regex PATTERN.
  if (args.Has("json-schema")) {
    std::ifstream file(args.Get("json-schema"));
    if (!file) return absl::NotFoundError(absl::StrCat("--json-schema: cannot read '", args.Get("json-schema"), "'"));
    r.set_guided_json(std::string(std::istreambuf_iterator<char>(file), {}));
  }
  r.set_guided_json_object(args.Has("json-object"));
  for (const auto& c : absl::StrSplit(args.Get("choice"), ',', absl::SkipEmpty())) r.add_guided_choice(std::string(c));
  r.set_guided_regex(args.Get("regex"));
  if (args.Has("stream")) {
    absl::Status s = client.GenerateStream(r, [&](const v1::GenerateChunk& c) {
      std::fputs(c.text().c_str(), stdout);
      std::fflush(stdout);
      return true;
    });
    std::puts("");
    return s;
  }
  auto response = client.Generate(r);
  if (!response.ok()) return response.status();
  if (out.json) return out.Message(*response), absl::OkStatus();
  std::printf("%s\n", response->text().c_str());
  std::fprintf(stderr, "[adapter %s, %zu tokens, %s, %.3f s]\n", response->adapter_id().empty() ? "none" : response->adapter_id().c_str(),
               static_cast<size_t>(response->tokens_size()), response->finish_reason().c_str(), response->total_seconds());
  return absl::OkStatus();
}

absl::Status ClassifyCommand(const Args& args, client::Client& client, const Output& out) {
  v1::ClassifyRequest r;
  auto text = args.Required("text");
  auto labels = args.Required("labels");
  if (!text.ok()) return text.status();
  if (!labels.ok()) return labels.status();
  r.set_adapter(args.Get("adapter"));
  r.set_text(*text);
  for (const auto& l : absl::StrSplit(*labels, ',', absl::SkipEmpty())) r.add_labels(std::string(l));
  auto response = client.Classify(r);
  if (!response.ok()) return response.status();
  if (out.json) return out.Message(*response), absl::OkStatus();
  std::vector<std::vector<std::string>> rows;
  for (int i = 0; i < response->labels_size(); ++i)
    rows.push_back({response->labels(i), FormatDouble(response->log_likelihoods(i)),
                    response->labels(i) == response->predicted() ? "<- predicted" : ""});
  out.Table({"LABEL", "LOG_LIKELIHOOD", ""}, rows);
  return absl::OkStatus();
}

namespace {


absl::Status WriteText(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(text.data(), 1, text.size(), f) != text.size())
    return absl::InternalError(absl::StrCat("cannot write ", path));
  std::fclose(f);
  return absl::OkStatus();
}

// qloractl eval review-export ID --out DIR [--size 50] [--seed 1] [--blind]
absl::Status ReviewExport(const Args& args, client::Client& client) {
  auto id = args.Positional(1, "EVALUATION_ID");
  auto dir = args.Required("out");
  if (!id.ok()) return id.status();
  if (!dir.ok()) return dir.status();
  v1::ExportReviewSampleRequest r;
  r.set_evaluation_id(*id);
  r.set_sample_size(static_cast<int32_t>(args.Number("size", 50).value_or(50)));
  r.set_seed(static_cast<uint64_t>(args.Number("seed", 1).value_or(1)));
  r.set_blind(args.Has("blind"));
  auto sample = client.ExportReviewSample(r);
  if (!sample.ok()) return sample.status();
  if (auto s = WriteText(*dir + "/review.csv", sample->csv()); !s.ok()) return s;
  if (auto s = WriteText(*dir + "/review.jsonl", sample->jsonl()); !s.ok()) return s;
  std::printf("%lld items%s written to %s/review.csv and review.jsonl %s\n", static_cast<long long>(sample->items()),
              sample->blind() ? " (blind)" : "", dir->c_str(), sample->note().c_str());
  return absl::OkStatus();
}

// qloractl eval review-import ID --reviewer NAME=FILE [--reviewer NAME=FILE ...] (FILE .csv or .jsonl)
absl::Status ReviewImport(const Args& args, client::Client& client, const std::vector<std::string>& reviewer_args) {
  auto id = args.Positional(1, "EVALUATION_ID");
  if (!id.ok()) return id.status();
  if (reviewer_args.empty()) return absl::InvalidArgumentError("--reviewer NAME=FILE is required (once per reviewer)");
  v1::ImportReviewsRequest r;
  r.set_evaluation_id(*id);
  for (const std::string& spec : reviewer_args) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos) return absl::InvalidArgumentError(absl::StrCat("--reviewer '", spec, "' is not NAME=FILE"));
    auto text = ReadText(spec.substr(eq + 1));
    if (!text.ok()) return text.status();
    v1::ReviewerFile* f = r.add_files();
    f->set_reviewer(spec.substr(0, eq));
    f->set_format(absl::EndsWith(spec, ".jsonl") ? "jsonl" : "csv");
    f->set_content(*text);
  }
  auto summary = client.ImportReviews(r);
  if (!summary.ok()) return summary.status();
  std::printf("%s\n", summary->summary_json().c_str());
  return absl::OkStatus();
}

// "95% CI [lower, upper]" of `system`'s ("baseline" or "adapter") headline metric from the
// evaluation record; "" when the record does not carry one.
std::string HeadlineInterval(const std::string& record_json, const char* system) {
  nlohmann::json record = nlohmann::json::parse(record_json, nullptr, false);
  if (!record.is_object() || !record.contains(system) || !record[system].is_object()) return "";
  const nlohmann::json& ci = record[system].value("headline", nlohmann::json::object());
  if (!ci.is_object() || !ci.contains("lower") || !ci.contains("upper")) return "";
  return absl::StrCat("95% CI [", FormatDouble(ci["lower"].get<double>()), ", ", FormatDouble(ci["upper"].get<double>()),
                      "]");
}

}  // namespace

absl::Status EvalCommand(const Args& args, client::Client& client, const Output& out) {
  if (!args.positionals().empty() && args.positionals()[0] == "review-export") return ReviewExport(args, client);
  if (!args.positionals().empty() && args.positionals()[0] == "review-import") return ReviewImport(args, client, args.All("reviewer"));
  absl::StatusOr<v1::Evaluation> e;
  if (!args.positionals().empty() && args.positionals()[0] == "get") {
    auto id = args.Positional(1, "EVALUATION_ID");
    if (!id.ok()) return id.status();
    e = client.GetEvaluation(*id);
  } else {
    v1::CreateEvaluationRequest r;
    auto dataset = args.Required("dataset");
    if (!dataset.ok()) return dataset.status();
    r.set_dataset_id(*dataset);
    r.set_adapter(args.Get("adapter"));
    r.set_max_examples(static_cast<int32_t>(args.Number("max-examples", 0).value_or(0)));
    r.set_scoring(args.Get("scoring"));
    e = client.CreateEvaluation(r);
  }
  if (!e.ok()) return e.status();
  if (out.json) return out.Message(*e), absl::OkStatus();
  std::vector<std::vector<std::string>> rows = {
      {"baseline", FormatDouble(e->baseline_value()), HeadlineInterval(e->record_json(), "baseline"), ""}};
  if (e->has_adapter())
    rows.push_back({e->adapter_id(), FormatDouble(e->adapter_value()), HeadlineInterval(e->record_json(), "adapter"),
                    absl::StrCat("delta 95% CI [", FormatDouble(e->delta_lower()), ", ", FormatDouble(e->delta_upper()), "]")});
  std::printf("evaluation %s on %s (%s)\n", e->evaluation_id().c_str(), e->dataset_id().c_str(), e->headline_metric().c_str());
  out.Table({"SYSTEM", e->headline_metric(), "INTERVAL", "DELTA"}, rows);
  std::printf("report: %s\n", e->report_path().c_str());
  return absl::OkStatus();
}

}  // namespace qlorad::ctl
