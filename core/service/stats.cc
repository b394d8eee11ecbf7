// ServiceCoreImpl::Stats: the counters and gauges /metrics reports (engine, adapters, jobs).
#include "core/service/core_impl.h"

namespace qlorad::service {

CoreStats ServiceCoreImpl::Stats() {
  CoreStats out;
  out.adapter_unloads = adapters_->unloads();
  serve::EngineStats engine = engine_->DrainStats();
  out.adapter_loads = engine.adapters.loads;
  out.adapter_load_failures = engine.adapters.load_failures;
  out.adapter_evictions = engine.adapters.evictions;
  out.adapter_load_seconds = std::move(engine.adapters.load_seconds);
  out.requests_running = engine.batch.running;
  out.requests_waiting = engine.batch.waiting;
  out.requests_in_flight = engine.in_flight;
  out.kv_blocks_used = engine.batch.kv_blocks_used;
  out.kv_blocks_reserved = engine.batch.kv_blocks_reserved;
  out.kv_blocks_total = engine.batch.kv_blocks_total;
  out.engine_bytes["kv_cache"] = (engine.batch.kv_blocks_total + 1) * engine.batch.kv_block_bytes;
  out.engine_bytes["weights"] = engine.weights_bytes;
  out.engine_bytes["adapters"] = 0;
  out.device = engine.device;
  if (engine.device_memory) {
    out.device_memory_used = engine.device_memory->used_bytes;
    out.device_memory_total = engine.device_memory->total_bytes;
  }
  out.batch_sizes = std::move(engine.batch.batch_rows);
  for (const char* tier : {"device", "host", "disk"}) out.adapters_by_tier[tier] = 0;
  for (const serve::AdapterResidency& r : engine.residency) {
    ++out.adapters_by_tier[serve::AdapterTierName(r.tier)];
    if (r.tier == serve::AdapterTier::kDevice) out.engine_bytes["adapters"] += r.bytes;
  }
  auto registered = adapter_store_->Count();
  out.adapters_registered = registered.ok() ? *registered : 0;
  for (const char* status : {"succeeded", "failed", "cancelled"}) {
    auto count = store_->CountJobsWithStatus(status);
    out.jobs_ended[status] = count.ok() ? *count : 0;
  }
  out.training_devices_busy = jobs_->DeviceBusy();
  return out;
}

}  // namespace qlorad::service
