// qlorad: the daemon. Owns the device(s), the state directory and the resident base
// model; serves qlorad.v1 over gRPC (+ grpc.health.v1 and reflection) and Prometheus
// metrics over HTTP.
//
//   qlorad --state-dir DIR --model DIR [--listen-address 127.0.0.1:50051]
//          [--metrics-address 127.0.0.1:9464] [--tokens-file FILE | --no-auth] ...
//   qlorad hash-token NAME ROLE   (reads the token on stdin, prints a tokens-file line)
//
// Signals: SIGTERM/SIGINT drain (stop accepting, let RPCs finish up to --drain-seconds,
// checkpoint running jobs, exit 0); SIGHUP reloads the tokens file.
#include <csignal>
#include <cstdio>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <iostream>
#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "core/util/cpu_runtime.h"
#include "core/util/sha256.h"
#include "server/daemon/daemon_flags.h"
#include "server/daemon/server_setup.h"

namespace qlorad::server {
namespace {

bool AsksForHelp(const std::vector<std::string>& args) {
  for (const std::string& arg : args)
    if (arg == "--help" || arg == "-h") return true;
  return false;
}

int HashToken(const std::vector<std::string>& args) {
  constexpr char kUsage[] =
      "usage: qlorad hash-token NAME ROLE < token   (ROLE: admin|trainer|deployer|inference|reviewer|viewer)\n";
  if (AsksForHelp(args)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args.size() != 2 || !ParseRole(args[1]).ok()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string token;
  std::getline(std::cin, token);
  if (token.empty()) {
    std::fprintf(stderr, "qlorad hash-token: empty token on stdin\n");
    return 2;
  }
  std::printf("%s %s sha256:%s\n", args[0].c_str(), args[1].c_str(), Sha256Hex(token).c_str());
  return 0;
}

// Caps glibc's malloc arenas (0 keeps its default); must run before any thread starts.
void LimitMallocArenas(int arenas) {
#if defined(__GLIBC__)
  if (arenas > 0 && mallopt(M_ARENA_MAX, arenas) != 1) std::fprintf(stderr, "qlorad: WARNING: mallopt(M_ARENA_MAX) refused\n");
#else
  (void)arenas;
#endif
}

int Run(const std::vector<std::string>& args) {
  if (AsksForHelp(args)) {
    std::fputs(kDaemonUsage, stdout);
    return 0;
  }
  auto options = ParseDaemonOptions(args);
  if (!options.ok()) {
    std::fprintf(stderr, "qlorad: %s\n%s", std::string(options.status().message()).c_str(), kDaemonUsage);
    return 2;
  }
  LimitMallocArenas(options->malloc_arenas);
  // Signals are taken by one thread with sigwait; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto daemon = StartDaemon(*options);
  if (!daemon.ok()) {
    std::fprintf(stderr, "qlorad: %s\n", daemon.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "qlorad: devices:%s; using %s\n", (*daemon)->DevicesText().c_str(), options->core.device.c_str());
  std::fprintf(stderr, "qlorad: cpu runtime: %s\n", CpuRuntimeSummary().c_str());
  if (options->core.adapter_factors == "bf16")
    std::fprintf(stderr, "qlorad: adapter factors: bf16 (LoRA A/B kept in bf16 on the serving device)\n");
  if ((*daemon)->openai_port() > 0)
    std::fprintf(stderr, "qlorad: OpenAI-compatible API on port %d (/v1/models, /v1/completions, /v1/chat/completions)\n",
                 (*daemon)->openai_port());
  if ((*daemon)->console_port() > 0)
    std::fprintf(stderr, "qlorad: review console on %s://%s:%d/\n", (*daemon)->console_tls() ? "https" : "http",
                 options->console_address.substr(0, options->console_address.rfind(':')).c_str(), (*daemon)->console_port());
  for (const service::UnloadableAdapter& bad : (*daemon)->UnloadableAdapters())
    std::fprintf(stderr, "qlorad: WARNING: adapter %s is unloadable (listed with its load_error; fix its files and load it, "
                 "or delete it): %s\n", bad.id.c_str(), bad.reason.c_str());
  std::fprintf(stderr, "qlorad: serving %s on %s (metrics port %d)\n", options->core.base_model_dir.c_str(),
               (*daemon)->listen_address().c_str(), (*daemon)->metrics_port());
  while (true) {
    int signal = 0;
    sigwait(&signals, &signal);
    if (signal == SIGHUP) {
      absl::Status reloaded = (*daemon)->ReloadTokens();
      std::fprintf(stderr, "qlorad: SIGHUP: tokens %s\n", reloaded.ok() ? "reloaded" : reloaded.ToString().c_str());
      continue;
    }
    std::fprintf(stderr, "qlorad: draining (signal %d)\n", signal);
    (*daemon)->Drain(options->drain_seconds);
    std::fprintf(stderr, "qlorad: stopped\n");
    return 0;
  }
}

}  // namespace
}  // namespace qlorad::server

int main(int argc, char** argv) {
  qlorad::ConfigureCpuRuntime(argv);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "hash-token") return qlorad::server::HashToken({args.begin() + 1, args.end()});
  return qlorad::server::Run(args);
}
