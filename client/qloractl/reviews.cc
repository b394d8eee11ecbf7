// qloractl reviews queue | show EVAL | rate EVAL ITEM --a N --b N --preference A|B|tie
// [--comment TEXT] | submit EVAL, and qloractl audit SUBJECT: the interactive review as the
// token's principal (role reviewer, deployer or admin) and the audit trail (any role).
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/qloractl/cli.h"

namespace qlorad::ctl {
namespace {

std::string Shorten(const std::string& text, size_t max) {
  std::string one_line = text.substr(0, max);
  for (char& c : one_line)
    if (c == '\n' || c == '\t') c = ' ';
  return text.size() > max ? one_line + "..." : one_line;
}

absl::Status Queue(client::Client& client, const Output& out) {
  auto queue = client.ListReviewQueue();
  if (!queue.ok()) return queue.status();
  if (out.json) return out.Message(*queue), absl::OkStatus();
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : queue->entries()) {
    rows.push_back({e.evaluation_id(), e.adapter_id(), e.blind() ? "yes" : "no",
                    absl::StrCat(e.rated_by_reviewer(), "/", e.items()), e.submitted_by_reviewer() ? "yes" : "no",
                    e.submitted_reviewers().empty() ? "-" : absl::StrJoin(e.submitted_reviewers(), ",")});
  }
  out.Table({"EVALUATION", "ADAPTER", "BLIND", "RATED", "SUBMITTED", "SUBMITTED_BY"}, rows);
  return absl::OkStatus();
}

absl::Status Show(const std::string& evaluation_id, client::Client& client, const Output& out) {
  auto session = client.GetReviewSession(evaluation_id);
  if (!session.ok()) return session.status();
  if (out.json) return out.Message(*session), absl::OkStatus();
  std::vector<std::vector<std::string>> rows;
  for (const auto& i : session->items()) {
    auto rating = [](int r) { return r == 0 ? std::string("-") : absl::StrCat(r); };
    rows.push_back({i.item_id(), Shorten(i.input(), 30), Shorten(i.output_a(), 24), Shorten(i.output_b(), 24),
                    rating(i.rating_a()), rating(i.rating_b()), i.preference().empty() ? "-" : i.preference(),
                    i.label_a().empty() ? "?" : i.label_a() + "/" + i.label_b()});
  }
  out.Table({"ITEM", "INPUT", "A", "B", "RATING_A", "RATING_B", "PREF", "A/B"}, rows);
  std::printf("%s: %s, scale %d..%d%s\n", session->reviewer().c_str(), session->submitted() ? "submitted" : "in progress",
              session->scale_min(), session->scale_max(), session->blind() ? ", blind" : "");
  return absl::OkStatus();
}

absl::Status Rate(const Args& args, const std::string& evaluation_id, client::Client& client) {
  auto item = args.Positional(1, "ITEM_ID");
  if (!item.ok()) return item.status();
  auto a = args.Number("a", 0);
  auto b = args.Number("b", 0);
  auto preference = args.Required("preference");
  if (!a.ok()) return a.status();
  if (!b.ok()) return b.status();
  if (!preference.ok()) return preference.status();
  v1::SaveJudgementRequest r;
  r.set_evaluation_id(evaluation_id);
  r.set_item_id(*item);
  r.set_rating_a(static_cast<int32_t>(*a));
  r.set_rating_b(static_cast<int32_t>(*b));
  r.set_preference(*preference);
  r.set_comment(args.Get("comment"));
  return client.SaveJudgement(r);
}

}  // namespace

absl::Status ReviewsCommand(const std::string& verb, const Args& args, client::Client& client, const Output& out) {
  if (auto s = args.CheckKnown({"a", "b", "preference", "comment"}); !s.ok()) return s;
  if (verb == "queue") return Queue(client, out);
  auto evaluation = args.Positional(0, "EVALUATION_ID");
  if (verb != "show" && verb != "rate" && verb != "submit")
    return absl::InvalidArgumentError(absl::StrCat("unknown verb 'reviews ", verb, "' (queue|show|rate|submit)"));
  if (!evaluation.ok()) return evaluation.status();
  if (verb == "show") return Show(*evaluation, client, out);
  if (verb == "rate") return Rate(args, *evaluation, client);
  auto summary = client.SubmitReview(*evaluation);
  if (!summary.ok()) return summary.status();
  std::printf("%s\n", summary->summary_json().c_str());
  return absl::OkStatus();
}

absl::Status AuditCommand(const Args& args, client::Client& client, const Output& out) {
  auto subject = args.Positional(0, "SUBJECT (adapter:NAME@VERSION, evaluation:ID, ...)");
  if (!subject.ok()) return subject.status();
  auto trail = client.AuditTrail(*subject);
  if (!trail.ok()) return trail.status();
  if (out.json) return out.Message(*trail), absl::OkStatus();
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : trail->entries()) {
    rows.push_back({absl::StrCat(e.seq()), e.at(), e.actor(), e.action(),
                    e.from_state().empty() && e.to_state().empty() ? "-" : e.from_state() + "->" + e.to_state(),
                    Shorten(e.details_json(), 60)});
  }
  out.Table({"SEQ", "AT", "ACTOR", "ACTION", "STATE", "DETAILS"}, rows);
  return absl::OkStatus();
}

}  // namespace qlorad::ctl
