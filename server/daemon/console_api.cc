#include "server/daemon/console_api.h"

#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "server/daemon/console_assets.h"
#include "server/daemon/console_json.h"
#include "server/daemon/http_server.h"

namespace qlorad::server {
namespace {

using Json = nlohmann::json;

constexpr char kJson[] = "application/json";
// The page loads only its own scripts. The evaluation report (one <style> element, no
// script) opens from a blob: URL the page made, which inherits this policy: hence the
// inline styles.
constexpr char kPagePolicy[] =
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "frame-src blob:; frame-ancestors 'none'";

const char* ContentType(const std::string& name) {
  if (absl::EndsWith(name, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(name, ".css")) return "text/css; charset=utf-8";
  if (absl::EndsWith(name, ".js")) return "text/javascript; charset=utf-8";
  return "application/octet-stream";
}

void ServeAsset(const std::string& name, httplib::Response& res) {
  for (const EmbeddedFile* f = kEmbeddedFiles; f->name != nullptr; ++f) {
    if (name != f->name) continue;
    res.set_header("Content-Security-Policy", kPagePolicy);
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Cache-Control", "no-cache");
    res.set_content(std::string(f->data, f->size), ContentType(name));
    return;
  }
  SendConsoleError(res, absl::NotFoundError(absl::StrCat("no console file '", name, "'")));
}

// Calls `f` on success, else writes the error.
template <typename T, typename F>
void Answer(httplib::Response& res, const absl::StatusOr<T>& result, F f) {
  if (!result.ok()) return SendConsoleError(res, result.status());
  SendConsoleJson(res, f(*result));
}

}  // namespace

void SendConsoleError(httplib::Response& res, const absl::Status& status) {
  const HttpError http = ToHttpError(status.code());
  res.status = http.status;
  Json body = {{"error", {{"message", std::string(status.message())}, {"code", absl::StatusCodeToString(status.code())}}}};
  res.set_content(body.dump(), kJson);
}

void SendConsoleJson(httplib::Response& res, const Json& body) {
  res.set_header("Cache-Control", "no-store");
  res.set_content(body.dump(), kJson);
}

void ConsoleApi::Register(httplib::Server& s) {
  using Req = const httplib::Request&;
  using Res = httplib::Response&;
  s.Get("/", [](Req, Res res) { ServeAsset("index.html", res); });
  s.Get(R"(/([a-z_]+\.(?:js|css)))", [](Req req, Res res) { ServeAsset(req.matches[1], res); });
  s.Get("/favicon.ico", [](Req, Res res) { res.status = 204; });
  s.Get("/api/whoami", [this](Req req, Res res) { Whoami(req, res); });
  s.Get("/api/queue", [this](Req req, Res res) { Queue(req, res); });
  s.Get(R"(/api/reviews/([^/]+))", [this](Req req, Res res) { Session(req, res); });
  s.Put(R"(/api/reviews/([^/]+)/items/([^/]+))", [this](Req req, Res res) { SaveItem(req, res); });
  s.Post(R"(/api/reviews/([^/]+)/submit)", [this](Req req, Res res) { Submit(req, res); });
  s.Get("/api/adapters", [this](Req req, Res res) { Adapters(req, res); });
  s.Get(R"(/api/adapters/([^/]+))", [this](Req req, Res res) { Adapter(req, res); });
  s.Post(R"(/api/adapters/([^/]+)/approve)", [this](Req req, Res res) { Decide(req, res, true); });
  s.Post(R"(/api/adapters/([^/]+)/reject)", [this](Req req, Res res) { Decide(req, res, false); });
  s.Get(R"(/api/evaluations/([^/]+)/report)", [this](Req req, Res res) { Report(req, res); });
  s.Get("/api/audit", [this](Req req, Res res) { Audit(req, res); });
  s.set_error_handler([](Req req, Res res) {
    if (!res.body.empty()) return;
    SendConsoleError(res, absl::Status(res.status == 404   ? absl::StatusCode::kNotFound
                                       : res.status >= 500 ? absl::StatusCode::kInternal
                                                           : absl::StatusCode::kInvalidArgument,
                                       absl::StrCat("HTTP ", res.status, " for ", req.method, " ", req.path)));
  });
  s.set_exception_handler([](Req, Res res, std::exception_ptr error) {
    SendConsoleError(res, absl::InternalError(absl::StrCat("internal error: ", DescribeException(error))));
  });
}

bool ConsoleApi::Authorize(const httplib::Request& req, httplib::Response& res, Permission needed, const char* method,
                           Principal* who) {
  const bool has_header = req.has_header("Authorization");
  const std::string header = req.get_header_value("Authorization");
  auto principal = d_.auth->AuthorizeHeader(has_header ? &header : nullptr, needed, method);
  if (!principal.ok()) {
    SendConsoleError(res, principal.status());
    return false;
  }
  *who = *principal;
  return true;
}

void ConsoleApi::Whoami(const httplib::Request& req, httplib::Response& res) {
  Principal who;
  if (!Authorize(req, res, Permission::kRead, "Whoami", &who)) return;
  SendConsoleJson(res, {{"name", who.name},
                        {"role", RoleName(who.role)},
                        {"can_review", Authenticator::Allows(who.role, Permission::kReview)},
                        {"can_deploy", Authenticator::Allows(who.role, Permission::kDeploy)}});
}

void ConsoleApi::Queue(const httplib::Request& req, httplib::Response& res) {
  Principal who;
  if (!Authorize(req, res, Permission::kReview, "ListReviewQueue", &who)) return;
  Answer(res, d_.core->ListReviewQueue(who.name), [](const std::vector<service::ReviewQueueEntry>& entries) {
    Json out = Json::array();
    for (const auto& e : entries) out.push_back(QueueEntryToJson(e));
    return Json{{"entries", out}};
  });
}

void ConsoleApi::Session(const httplib::Request& req, httplib::Response& res) {
  Principal who;
  if (!Authorize(req, res, Permission::kReview, "GetReviewSession", &who)) return;
  Answer(res, d_.core->GetReviewSession(req.matches[1], who.name), ReviewSessionToJson);
}

void ConsoleApi::SaveItem(const httplib::Request& req, httplib::Response& res) {
  Principal who;
  if (!Authorize(req, res, Permission::kReview, "SaveJudgement", &who)) return;
  auto judgement = JudgementFromJson(req.body, req.matches[2]);
  if (!judgement.ok()) return SendConsoleError(res, judgement.status());
  absl::Status saved = d_.core->SaveJudgement(req.matches[1], who.name, *judgement);
  if (!saved.ok()) return SendConsoleError(res, saved);
  SendConsoleJson(res, {{"saved", true}, {"item_id", judgement->item_id}});
}

void ConsoleApi::Submit(const httplib::Request& req, httplib::Response& res) {
  Principal who;
  if (!Authorize(req, res, Permission::kReview, "SubmitReview", &who)) return;
  Answer(res, d_.core->SubmitReview(req.matches[1], who.name), [](const Json& summary) { return Json{{"summary", summary}}; });
}

void ConsoleApi::Adapters(const httplib::Request& req, httplib::Response& res) {
  Principal who;
  if (!Authorize(req, res, Permission::kRead, "ListAdapters", &who)) return;
  service::Page page;
  page.page_size = 1000;
  std::string next;
  Answer(res, d_.core->ListAdapters(page, &next), [](const std::vector<service::AdapterInfo>& adapters) {
    Json out = Json::array();
    for (const auto& a : adapters) out.push_back(AdapterToJson(a));
    return Json{{"adapters", out}};
  });
}

// The adapter with its evaluations: its latest one plus those with a review sample
// (from the queue, when the caller may review), newest first as the core lists them.
void ConsoleApi::Adapter(const httplib::Request& req, httplib::Response& res) {
  Principal who;
  if (!Authorize(req, res, Permission::kRead, "GetAdapter", &who)) return;
  auto adapter = d_.core->GetAdapter(req.matches[1]);
  if (!adapter.ok()) return SendConsoleError(res, adapter.status());
  std::vector<std::string> ids;
  if (!adapter->evaluation_id.empty()) ids.push_back(adapter->evaluation_id);
  auto queue = d_.core->ListReviewQueue(who.name);
  if (queue.ok()) {
    for (const auto& e : *queue)
      if (e.adapter_id == adapter->id) ids.push_back(e.evaluation_id);
  }
  Json evaluations = Json::array();
  std::set<std::string> seen;
  for (const auto& id : ids) {
    if (!seen.insert(id).second) continue;
    auto evaluation = d_.core->GetEvaluation(id);
    if (!evaluation.ok()) return SendConsoleError(res, evaluation.status());
    evaluations.push_back(EvaluationSummaryToJson(*evaluation));
  }
  Json out = {{"adapter", AdapterToJson(*adapter)}, {"evaluations", evaluations}};
  const std::string alias = req.get_param_value("alias");
  if (!alias.empty()) {  // the CI gate's verdict for promoting onto `alias` (null until the gate exists)
    auto gate = d_.core->CheckPromotion(adapter->id, alias);
    out["gate"] = gate.ok() ? PromotionCheckToJson(*gate) : Json(nullptr);
    if (!gate.ok() && gate.status().code() != absl::StatusCode::kUnimplemented)
      out["gate_error"] = std::string(gate.status().message());
  }
  SendConsoleJson(res, out);
}

void ConsoleApi::Report(const httplib::Request& req, httplib::Response& res) {
  Principal who;
  if (!Authorize(req, res, Permission::kRead, "GetEvaluationReport", &who)) return;
  auto evaluation = d_.core->GetEvaluation(req.matches[1]);
  if (!evaluation.ok()) return SendConsoleError(res, evaluation.status());
  if (evaluation->report_path.empty())
    return SendConsoleError(res, absl::NotFoundError(absl::StrCat("evaluation ", evaluation->id, " has no HTML report")));
  auto html = ReadFileToString(evaluation->report_path);
  if (!html.ok()) return SendConsoleError(res, html.status());
  res.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:");
  res.set_header("Cache-Control", "no-store");
  res.set_content(*html, "text/html; charset=utf-8");
}

void ConsoleApi::Audit(const httplib::Request& req, httplib::Response& res) {
  Principal who;
  if (!Authorize(req, res, Permission::kRead, "AuditTrail", &who)) return;
  const std::string subject = req.get_param_value("subject");
  if (subject.empty())
    return SendConsoleError(res, absl::InvalidArgumentError("subject: required (hint: ?subject=adapter:NAME@N)"));
  Answer(res, d_.core->AuditTrail(subject), [](const std::vector<Json>& entries) { return Json{{"entries", entries}}; });
}

void ConsoleApi::Decide(const httplib::Request& req, httplib::Response& res, bool approve) {
  Principal who;
  if (!Authorize(req, res, Permission::kDeploy, approve ? "ApproveAdapter" : "RejectAdapter", &who)) return;
  auto decision = DecisionFromJson(req.body, who.name);
  if (!decision.ok()) return SendConsoleError(res, decision.status());
  Answer(res, d_.core->Decide(req.matches[1], approve, *decision),
         [](const service::AdapterInfo& a) { return Json{{"adapter", AdapterToJson(a)}}; });
}

}  // namespace qlorad::server
