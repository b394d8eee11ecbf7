// The review console on --console-address: a static page (server/console/, compiled in)
// and a JSON API over the same ServiceCore and authenticator as the gRPC services (no
// second store, no second auth). Every /api call carries `Authorization: Bearer <token>`.
//
//   GET  /  /*.js  /*.css                   the page (no token needed: it holds no data)
//   GET  /api/whoami                         {name, role, can_review, can_deploy}
//   GET  /api/queue                          review queue with the caller's progress   (review)
//   GET  /api/reviews/{evaluation}           the caller's review session                (review)
//   PUT  /api/reviews/{evaluation}/items/{item}  {rating_a, rating_b, preference, comment} (review)
//   POST /api/reviews/{evaluation}/submit    ends the caller's review; the summary     (review)
//   GET  /api/adapters                       adapters (id, state, aliases)              (read)
//   GET  /api/adapters/{ref}                 {adapter, evaluations (slimmed records)}  (read)
//   GET  /api/evaluations/{id}/report        the evaluation's HTML report               (read)
//   GET  /api/audit?subject=adapter:ID       the audit trail of one subject             (read)
//   POST /api/adapters/{ref}/approve|reject  {risk_class, documentation_ref, note,
//                                             evidence_evaluation_ids, evidence_review_summary} (deploy)
// Errors: {"error": {"message", "code"}} with the HTTP status of ToHttpError (401, 403, ...).
#ifndef QLORAD_SERVER_DAEMON_CONSOLE_API_H_
#define QLORAD_SERVER_DAEMON_CONSOLE_API_H_

#include <string>

#include <httplib.h>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "server/daemon/daemon_context.h"

namespace qlorad::server {

class ConsoleApi {
 public:
  explicit ConsoleApi(DaemonContext d) : d_(std::move(d)) {}
  void Register(httplib::Server& server);

 private:
  // Authorizes the request; on failure the error is already written and false returned.
  bool Authorize(const httplib::Request& req, httplib::Response& res, Permission needed, const char* method,
                 Principal* who);
  void Whoami(const httplib::Request& req, httplib::Response& res);
  void Queue(const httplib::Request& req, httplib::Response& res);
  void Session(const httplib::Request& req, httplib::Response& res);
  void SaveItem(const httplib::Request& req, httplib::Response& res);
  void Submit(const httplib::Request& req, httplib::Response& res);
  void Adapters(const httplib::Request& req, httplib::Response& res);
  void Adapter(const httplib::Request& req, httplib::Response& res);
  void Report(const httplib::Request& req, httplib::Response& res);
  void Audit(const httplib::Request& req, httplib::Response& res);
  void Decide(const httplib::Request& req, httplib::Response& res, bool approve);

  DaemonContext d_;
};

// The one place a console error becomes an HTTP answer.
void SendConsoleError(httplib::Response& res, const absl::Status& status);
void SendConsoleJson(httplib::Response& res, const nlohmann::json& body);

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_CONSOLE_API_H_
