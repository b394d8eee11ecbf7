#include "server/daemon/daemon_flags.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/util/status_macros.h"
#include "server/daemon/listen_address.h"
#include "server/tool/flags.h"

namespace qlorad::server {

absl::StatusOr<DaemonOptions> ParseDaemonOptions(const std::vector<std::string>& args) {
  QLORAD_ASSIGN_OR_RETURN(
      tool::Flags flags,
      tool::Flags::Parse(args,
                         {"state-dir", "model", "model-name", "device", "listen-address", "metrics-address", "tokens-file",
                          "rate-limit", "tls-cert", "tls-key", "tls-client-ca", "serve-quantize", "adapter-factors", "training-workers",
                          "devices", "collective-timeout",
                          "max-queued-jobs", "checkpoint-every", "max-prompt-tokens", "max-new-tokens",
                          "max-waiting-requests", "max-message-bytes", "max-upload-bytes", "drain-seconds",
                          "metrics-max-adapters", "drift-window-prompts", "drift-window-seconds", "kv-cache-mb",
                          "max-batch", "prefill-chunk-tokens", "max-resident-adapters", "memory-limit-mb",
                          "openai-address", "openai-threads", "console-address", "import-root", "max-adapter-upload-mb",
                          "promotion-margin", "db-busy-timeout-ms", "db-busy-attempts", "malloc-arenas"},
                         {"no-auth", "no-require-approval"}));
  if (!flags.positional().empty())
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", flags.positional()[0], "'"));
  DaemonOptions o;
  QLORAD_ASSIGN_OR_RETURN(o.core.state_dir, flags.GetRequired("state-dir"));
  QLORAD_ASSIGN_OR_RETURN(o.core.base_model_dir, flags.GetRequired("model"));
  o.core.base_model_name = flags.GetOr("model-name", "");
  o.core.device = flags.GetOr("device", "auto");
  o.core.serve_quantize = flags.GetOr("serve-quantize", "none");
  o.core.adapter_factors = flags.GetOr("adapter-factors", "compute");
  if (o.core.adapter_factors != "compute" && o.core.adapter_factors != "bf16")
    return absl::InvalidArgumentError(
        absl::StrCat("--adapter-factors: '", o.core.adapter_factors, "' is not one of compute, bf16"));
  QLORAD_ASSIGN_OR_RETURN(long long workers, flags.GetInt("training-workers", 1));
  o.core.training_workers = static_cast<int>(workers);
  if (const std::string devices = flags.GetOr("devices", ""); !devices.empty()) {
    for (absl::string_view d : absl::StrSplit(devices, ',')) {
      if (d.empty()) return absl::InvalidArgumentError("--devices: an empty entry (hint: --devices cuda:0,cuda:1)");
      o.core.training_devices.emplace_back(d);
    }
  }
  QLORAD_ASSIGN_OR_RETURN(o.core.collective_timeout_seconds, flags.GetDouble("collective-timeout", 300));
  if (!(o.core.collective_timeout_seconds > 0)) return absl::InvalidArgumentError("--collective-timeout: seconds > 0");
  QLORAD_ASSIGN_OR_RETURN(o.core.max_queued_jobs, flags.GetInt("max-queued-jobs", 64));
  QLORAD_ASSIGN_OR_RETURN(o.core.checkpoint_every_steps, flags.GetInt("checkpoint-every", 10));
  QLORAD_ASSIGN_OR_RETURN(o.core.db_busy_timeout_ms, flags.GetInt("db-busy-timeout-ms", o.core.db_busy_timeout_ms));
  QLORAD_ASSIGN_OR_RETURN(o.core.db_busy_attempts, flags.GetInt("db-busy-attempts", o.core.db_busy_attempts));
  if (o.core.db_busy_timeout_ms < 0 || o.core.db_busy_timeout_ms > 600000 || o.core.db_busy_attempts < 1 ||
      o.core.db_busy_attempts > 100)
    return absl::InvalidArgumentError("--db-busy-timeout-ms must be in [0, 600000] and --db-busy-attempts in [1, 100]");
  QLORAD_ASSIGN_OR_RETURN(o.core.max_prompt_tokens, flags.GetInt("max-prompt-tokens", 2048));
  QLORAD_ASSIGN_OR_RETURN(o.core.max_new_tokens, flags.GetInt("max-new-tokens", o.core.max_new_tokens));
  QLORAD_ASSIGN_OR_RETURN(o.core.max_waiting_requests, flags.GetInt("max-waiting-requests", 4096));
  QLORAD_ASSIGN_OR_RETURN(o.core.kv_cache_mb, flags.GetInt("kv-cache-mb", 256));
  QLORAD_ASSIGN_OR_RETURN(o.core.max_batch, flags.GetInt("max-batch", 64));
  QLORAD_ASSIGN_OR_RETURN(o.core.prefill_chunk_tokens, flags.GetInt("prefill-chunk-tokens", 256));
  QLORAD_ASSIGN_OR_RETURN(o.core.max_resident_adapters, flags.GetInt("max-resident-adapters", 64));
  if (o.core.kv_cache_mb <= 0 || o.core.max_batch <= 0 || o.core.prefill_chunk_tokens <= 0 || o.core.max_resident_adapters <= 0)
    return absl::InvalidArgumentError(
        "--kv-cache-mb, --max-batch, --prefill-chunk-tokens and --max-resident-adapters must be positive");
  o.core.require_approval = !flags.GetBool("no-require-approval");
  QLORAD_ASSIGN_OR_RETURN(o.core.drift_window_prompts, flags.GetInt("drift-window-prompts", 500));
  QLORAD_ASSIGN_OR_RETURN(o.core.drift_window_seconds, flags.GetDouble("drift-window-seconds", 0.0));
  o.core.import_root = flags.GetOr("import-root", "");
  QLORAD_ASSIGN_OR_RETURN(o.core.promotion_margin, flags.GetDouble("promotion-margin", o.core.promotion_margin));
  if (!(o.core.promotion_margin >= 0 && o.core.promotion_margin <= 1))
    return absl::InvalidArgumentError("--promotion-margin must be in [0, 1] (a difference of the headline metric, e.g. 0.05)");
  QLORAD_ASSIGN_OR_RETURN(long long upload_mb, flags.GetInt("max-adapter-upload-mb", 2048));
  if (upload_mb < 1 || upload_mb > (1ll << 30)) return absl::InvalidArgumentError("--max-adapter-upload-mb must be in [1, 2^30]");
  o.core.max_adapter_upload_bytes = static_cast<int64_t>(upload_mb) << 20;
  o.auth.tokens_file = flags.GetOr("tokens-file", "");
  o.auth.disabled = flags.GetBool("no-auth");
  QLORAD_ASSIGN_OR_RETURN(o.auth.rate_per_second, flags.GetDouble("rate-limit", 0.0));
  o.listen_address = flags.GetOr("listen-address", o.listen_address);
  o.metrics_address = flags.GetOr("metrics-address", o.metrics_address);
  o.openai_address = flags.GetOr("openai-address", "");
  o.console_address = flags.GetOr("console-address", "");
  QLORAD_ASSIGN_OR_RETURN(long long openai_threads, flags.GetInt("openai-threads", 64));
  if (openai_threads < 1 || openai_threads > 4096) return absl::InvalidArgumentError("--openai-threads must be in [1, 4096]");
  o.openai_threads = static_cast<int>(openai_threads);
  o.tls_cert = flags.GetOr("tls-cert", "");
  o.tls_key = flags.GetOr("tls-key", "");
  o.tls_client_ca = flags.GetOr("tls-client-ca", "");
  if (o.tls_cert.empty() != o.tls_key.empty()) return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  if (!o.tls_client_ca.empty() && o.tls_cert.empty()) return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert");
  QLORAD_ASSIGN_OR_RETURN(o.max_message_bytes, flags.GetInt("max-message-bytes", 4 << 20));
  QLORAD_ASSIGN_OR_RETURN(o.max_upload_bytes, flags.GetInt("max-upload-bytes", 256ll << 20));
  QLORAD_ASSIGN_OR_RETURN(long long drain, flags.GetInt("drain-seconds", 30));
  o.drain_seconds = static_cast<int>(drain);
  QLORAD_ASSIGN_OR_RETURN(long long max_adapters, flags.GetInt("metrics-max-adapters", 100));
  o.metrics_max_adapters = static_cast<int>(max_adapters);
  QLORAD_ASSIGN_OR_RETURN(o.memory_limit_mb, flags.GetInt("memory-limit-mb", 0));
  QLORAD_ASSIGN_OR_RETURN(long long arenas, flags.GetInt("malloc-arenas", o.malloc_arenas));
  if (arenas < 0 || arenas > 1024) return absl::InvalidArgumentError("--malloc-arenas must be in [0, 1024] (0: glibc's default)");
  o.malloc_arenas = static_cast<int>(arenas);
  // --no-auth makes every caller admin: only this host may reach any of the listeners.
  QLORAD_RETURN_IF_ERROR(CheckNoAuthAddress(o.auth.disabled, "--listen-address", o.listen_address));
  QLORAD_RETURN_IF_ERROR(CheckNoAuthAddress(o.auth.disabled, "--metrics-address", o.metrics_address));
  QLORAD_RETURN_IF_ERROR(CheckNoAuthAddress(o.auth.disabled, "--openai-address", o.openai_address));
  QLORAD_RETURN_IF_ERROR(CheckNoAuthAddress(o.auth.disabled, "--console-address", o.console_address));
  return o;
}

}  // namespace qlorad::server
