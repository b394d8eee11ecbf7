#include "server/daemon/server_setup.h"

#include <chrono>
#include <cstdio>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "server/daemon/adapters_service.h"
#include "server/daemon/datasets_service.h"
#include "server/daemon/inference_service.h"
#include "server/daemon/jobs_service.h"
#include "server/daemon/listen_address.h"
#include "server/daemon/reflection_auth.h"
#include "server/daemon/reviews_service.h"

namespace qlorad::server {
namespace {

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const DaemonOptions& o) {
  if (o.tls_cert.empty()) {
    if (!IsLoopbackAddress(o.listen_address))
      std::fprintf(stderr, "qlorad: WARNING: listening on %s without TLS; bearer tokens travel in clear text "
                           "(hint: --tls-cert/--tls-key)\n", o.listen_address.c_str());
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions ssl;
  QLORAD_ASSIGN_OR_RETURN(std::string cert, ReadFileToString(o.tls_cert));
  QLORAD_ASSIGN_OR_RETURN(std::string key, ReadFileToString(o.tls_key));
  ssl.pem_key_cert_pairs.push_back({key, cert});
  if (!o.tls_client_ca.empty()) {
    QLORAD_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFileToString(o.tls_client_ca));
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

// An HTTP listener on `address` with the daemon's TLS settings.
HttpServerOptions HttpOptions(const DaemonOptions& o, const std::string& address, const char* flag) {
  if (o.tls_cert.empty() && !IsLoopbackAddress(address))
    std::fprintf(stderr, "qlorad: WARNING: %s %s without TLS; bearer tokens travel in clear text\n", flag, address.c_str());
  HttpServerOptions http;
  http.address = address;
  http.flag = flag;
  http.tls_cert = o.tls_cert;
  http.tls_key = o.tls_key;
  http.tls_client_ca = o.tls_client_ca;
  return http;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Daemon>> StartDaemon(const DaemonOptions& options) {
  std::unique_ptr<Daemon> d(new Daemon());
  QLORAD_ASSIGN_OR_RETURN(d->auth_, Authenticator::Create(options.auth));
  if (options.auth.disabled) std::fprintf(stderr, "qlorad: WARNING: --no-auth: every caller is admin (development only)\n");
  QLORAD_ASSIGN_OR_RETURN(auto credentials, Credentials(options));
  QLORAD_ASSIGN_OR_RETURN(d->core_, service::ServiceCore::Start(options.core));
  QLORAD_ASSIGN_OR_RETURN(d->metrics_, DaemonMetrics::Start(options.metrics_address, options.metrics_max_adapters,
                                                              options.memory_limit_mb << 20, d->core_.get()));
  DaemonContext context;
  context.core = d->core_.get();
  context.auth = d->auth_.get();
  context.max_upload_bytes = options.max_upload_bytes;
  DaemonMetrics* metrics = d->metrics_.get();
  context.on_rpc_done = [metrics](const char* service, const char* method, const grpc::Status& status, double seconds) {
    metrics->ObserveRpc(service, method, status, seconds);
  };
  d->services_.push_back(std::make_unique<DatasetsService>(context));
  d->services_.push_back(std::make_unique<JobsService>(context));
  d->services_.push_back(std::make_unique<AdaptersService>(context));
  const GenerationObserver observe_generation = [metrics](const service::GenerateOutput& out, const std::string&) {
    metrics->ObserveGeneration(out);
  };
  d->services_.push_back(std::make_unique<InferenceService>(context, observe_generation));
  d->services_.push_back(std::make_unique<EvaluationsService>(context));
  d->services_.push_back(std::make_unique<ReviewsService>(context));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen_address, credentials, &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  // qlorad.v1 RPCs authorize in HandleRpc; reflection here; health stays open (probes).
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(MakeReflectionAuthFactory(d->auth_.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  for (auto& service : d->services_) builder.RegisterService(service.get());
  d->server_ = builder.BuildAndStart();
  if (d->server_ == nullptr || port == 0)
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen_address,
                                               " (hint: port in use? --listen-address HOST:PORT)"));
  d->listen_address_ = absl::StrCat(options.listen_address.substr(0, options.listen_address.rfind(':')), ":", port);
  if (!options.openai_address.empty()) {
    d->openai_ = std::make_unique<OpenAiApi>(context, observe_generation, static_cast<size_t>(options.max_message_bytes));
    HttpServerOptions http = HttpOptions(options, options.openai_address, "--openai-address");
    http.threads = static_cast<size_t>(options.openai_threads);
    http.max_body_bytes = static_cast<size_t>(options.max_message_bytes) * 4;  // larger: httplib's 413
    OpenAiApi* api = d->openai_.get();
    QLORAD_ASSIGN_OR_RETURN(d->openai_http_, HttpServer::Start(http, [api](httplib::Server& s) { api->Register(s); }));
  }
  if (!options.console_address.empty()) {
    d->console_ = std::make_unique<ConsoleApi>(context);
    HttpServerOptions http = HttpOptions(options, options.console_address, "--console-address");
    http.threads = 16;
    http.max_body_bytes = 1 << 20;  // judgements and decisions are small
    ConsoleApi* api = d->console_.get();
    QLORAD_ASSIGN_OR_RETURN(d->console_http_, HttpServer::Start(http, [api](httplib::Server& s) { api->Register(s); }));
  }
  return d;
}

void Daemon::Drain(int seconds) {
  if (drained_) return;
  drained_ = true;
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(seconds);
  if (openai_ != nullptr) openai_->StartDraining();
  if (server_ != nullptr) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    server_->Shutdown(deadline);
  }
  // HTTP requests get the same deadline; then the listener stops (it waits for its handlers).
  if (openai_ != nullptr) openai_->FinishInFlight(deadline);
  openai_http_.reset();
  console_http_.reset();  // waits for its handlers (short calls into the core)
  if (core_ != nullptr) core_->Shutdown();
  metrics_.reset();
}

Daemon::~Daemon() { Drain(0); }

}  // namespace qlorad::server
