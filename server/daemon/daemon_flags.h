// The daemon's command line.
#ifndef QLORAD_SERVER_DAEMON_DAEMON_FLAGS_H_
#define QLORAD_SERVER_DAEMON_DAEMON_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/service/service_core.h"
#include "server/daemon/auth.h"

namespace qlorad::server {

struct DaemonOptions {
  service::CoreOptions core;
  AuthOptions auth;
  std::string listen_address = "127.0.0.1:50051";
  std::string metrics_address = "127.0.0.1:9464";  // "" = no metrics endpoint
  std::string openai_address;                       // OpenAI-compatible HTTP API; "" = off
  int openai_threads = 64;                          // concurrent HTTP requests (a stream holds one)
  std::string console_address;                      // the review console (page + JSON API); "" = off
  std::string tls_cert, tls_key, tls_client_ca;     // TLS; with a client CA: mutual TLS
  int64_t max_message_bytes = 4 << 20;
  int64_t max_upload_bytes = 256ll << 20;
  int drain_seconds = 30;
  int metrics_max_adapters = 100;  // distinct adapter label values before "other"
  int64_t memory_limit_mb = 0;     // exported as qlorad_process_memory_limit_bytes; 0 = the cgroup limit
  // glibc malloc arenas (mallopt M_ARENA_MAX) set before any thread starts; 0 = glibc's
  // default (8 per core). Each gRPC thread otherwise gets an arena of its own that keeps the
  // memory it freed: the soak (tests/bench/soak.py) measured RSS growing 12.8 MB/min under
  // Classify traffic with the default (flat under MALLOC_ARENA_MAX=2), and the mixed 600-s
  // soak 2.8 MB/min with the default against 0.5 MB/min, levelling off, with 2.
  int malloc_arenas = 2;
};

inline constexpr char kDaemonUsage[] =
    "usage: qlorad --state-dir DIR --model MODEL_DIR [--model-name NAME] [--device auto|cpu|cuda:N]\n"
    "  [--listen-address 127.0.0.1:50051] [--metrics-address 127.0.0.1:9464 | --metrics-address '']\n"
    "  [--openai-address HOST:PORT (OpenAI-compatible HTTP API; off by default)] [--openai-threads 64]\n"
    "  [--console-address HOST:PORT (review console in the browser: http://HOST:PORT/; off by default)]\n"
    "  [--tokens-file FILE | --no-auth (development; every address must be loopback)] [--rate-limit RPS] [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]\n"
    "  [--serve-quantize none|nf4] [--adapter-factors compute|bf16 (bf16: LoRA factors rounded to bf16 for fp32 CPU\n"
    "   serving, half the adapter bytes per decode step)] [--training-workers 1] [--max-queued-jobs 64] [--checkpoint-every 10]\n"
    "  [--devices cuda:0,cuda:1 | cpu,cpu (training devices; a job asks for N of them: data-parallel ranks)]\n"
    "  [--collective-timeout 300 (seconds a rank of a multi-device job may stay silent)]\n"
    "  [--max-prompt-tokens 2048] [--max-new-tokens 512] [--max-waiting-requests 4096]\n"
    "  [--max-message-bytes 4194304] [--max-upload-bytes 268435456] [--drain-seconds 30] [--no-require-approval]\n"
    "  [--drift-window-prompts 500] [--drift-window-seconds 0 (no age limit)]\n"
    "  [--import-root DIR (ImportAdapter reads only below DIR; off by default)] [--max-adapter-upload-mb 2048]\n"
    "  [--promotion-margin 0.05 (the CI gate: refuse a version whose 95% lower bound vs the serving one is below -margin)]\n"
    "  [--db-busy-timeout-ms 5000 --db-busy-attempts 3 (a write waits this long, this often, for another process's\n"
    "   lock on the database, then fails UNAVAILABLE)]\n"
    "  [--kv-cache-mb 256] [--max-batch 64] [--prefill-chunk-tokens 256] [--max-resident-adapters 64 (device LRU)]\n"
    "  [--metrics-max-adapters 100 (adapter label values before 'other')] [--memory-limit-mb 0 (0: the cgroup limit)]\n"
    "  [--malloc-arenas 2 (glibc malloc arenas; 0: glibc's default of 8 per core)]\n"
    "  qlorad hash-token NAME ROLE < token\n";

absl::StatusOr<DaemonOptions> ParseDaemonOptions(const std::vector<std::string>& args);

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_DAEMON_FLAGS_H_
