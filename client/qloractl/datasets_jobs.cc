// qloractl datasets ... and qloractl jobs ...
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/qloractl/cli.h"

namespace qlorad::ctl {
namespace {

namespace v1 = ::qlorad::v1;

std::vector<std::string> DatasetRow(const v1::Dataset& d) {
  return {d.dataset_id(), d.format(), absl::StrCat(d.train_examples()), absl::StrCat(d.holdout_examples()), d.created_at()};
}
const std::vector<std::string> kDatasetHeader = {"ID", "FORMAT", "TRAIN", "HOLDOUT", "CREATED"};

std::vector<std::string> JobRow(const v1::Job& j) {
  const v1::Progress& p = j.progress();
  return {j.job_id(), j.status(), absl::StrCat(p.step(), "/", p.total_steps()), p.total_steps() ? FormatDouble(p.loss()) : "-",
          j.adapter_id().empty() ? "-" : j.adapter_id(), j.created_at(),
          j.devices().empty() ? "-" : absl::StrJoin(j.devices(), ",")};
}
const std::vector<std::string> kJobHeader = {"ID", "STATUS", "STEP", "LOSS", "ADAPTER", "CREATED", "DEVICES"};

absl::Status UploadDataset(const Args& args, client::Client& client, const Output& out) {
  if (auto s = args.CheckKnown({"id", "format", "csv", "holdout", "seed", "allow-small", "no-pii"}); !s.ok()) return s;
  auto path = args.Positional(0, "FILE to upload");
  auto id = args.Required("id");
  if (!path.ok()) return path.status();
  if (!id.ok()) return id.status();
  v1::UploadDatasetHeader h;
  h.set_dataset_id(*id);
  h.set_format(args.Get("format", "auto"));
  h.set_csv(args.Has("csv"));
  auto holdout = args.Number("holdout", 0);
  auto seed = args.Number("seed", 0);
  if (!holdout.ok()) return holdout.status();
  if (!seed.ok()) return seed.status();
  h.set_holdout_fraction(*holdout);
  h.set_seed(static_cast<uint64_t>(*seed));
  h.set_allow_small_dataset(args.Has("allow-small"));
  h.set_disable_pii_anonymization(args.Has("no-pii"));
  auto d = client.UploadDataset(h, *path);
  if (!d.ok()) return d.status();
  if (out.json) return out.Message(*d), absl::OkStatus();
  out.Table(kDatasetHeader, {DatasetRow(*d)});
  return absl::OkStatus();
}

// A one-line live progress bar: step, loss, tokens/s and ETA.
void PrintProgress(const v1::Progress& p) {
  const int width = 30;
  const int filled = p.total_steps() > 0 ? static_cast<int>(width * p.step() / p.total_steps()) : 0;
  std::string bar = std::string(filled, '#') + std::string(width - filled, '-');
  std::fprintf(stderr, "\r[%s] step %lld/%lld loss %.4f lr %.2e %.0f tok/s ETA %.0fs   ", bar.c_str(),
               static_cast<long long>(p.step()), static_cast<long long>(p.total_steps()), p.loss(), p.learning_rate(),
               p.tokens_per_second(), p.eta_seconds());
  if (p.has_dpo())
    std::fprintf(stderr, "reward acc %.2f margin %.3f%s   ", p.dpo().accuracy(), p.dpo().margin(),
                 p.has_dpo_eval() ? absl::StrCat(" (validation acc ", absl::SixDigits(p.dpo_eval().accuracy()), ")").c_str() : "");
}

absl::Status WatchJob(const std::string& id, client::Client& client, const Output& out) {
  std::string final_status;
  absl::Status watched = client.WatchJob(id, 0, [&](const v1::JobEvent& e) {
    if (out.json) {
      out.Message(e);
      std::puts("");
    } else if (e.type() == "progress") {
      PrintProgress(e.progress());
    } else if (e.type() == "status") {
      std::fprintf(stderr, "\n%s job %s: %s%s%s\n", e.at().c_str(), id.c_str(), e.status().c_str(),
                   e.adapter_id().empty() ? "" : (" -> adapter " + e.adapter_id()).c_str(),
                   e.error().empty() ? "" : (" (" + e.error() + ")").c_str());
    }
    if (e.type() == "status") final_status = e.status();
    return true;
  });
  if (!watched.ok()) return watched;
  // The last thing printed is the job as it ended (state, steps, adapter), not as it was submitted.
  absl::StatusOr<v1::Job> ended = client.GetJob(id);
  if (!ended.ok()) return ended.status();
  if (out.json) out.Message(*ended); else out.Table(kJobHeader, {JobRow(*ended)});
  if (final_status == "failed") return absl::AbortedError(absl::StrCat("job ", id, " failed"));
  if (final_status == "cancelled") return absl::CancelledError(absl::StrCat("job ", id, " was cancelled"));
  return absl::OkStatus();
}

absl::Status SubmitJob(const Args& args, client::Client& client, const Output& out) {
  if (auto s = args.CheckKnown({"dataset", "name", "base-model", "quantize", "priority", "r", "alpha", "dropout", "targets",
                                "rslora", "dora", "lora-init", "loftq-iterations", "epochs", "batch-size", "grad-accum", "lr", "weight-decay", "loraplus-lr-ratio", "schedule",
                                "warmup-ratio", "max-grad-norm", "max-seq-len", "seed", "watch", "gradient-checkpointing", "packing",
                                "eval-fraction", "eval-every", "patience", "min-delta", "devices", "method", "dpo-beta", "checkpoint-keep"});
      !s.ok())
    return s;
  v1::CreateJobRequest r;
  auto dataset = args.Required("dataset");
  auto name = args.Required("name");
  if (!dataset.ok()) return dataset.status();
  if (!name.ok()) return name.status();
  r.set_dataset_id(*dataset);
  r.set_adapter_name(*name);
  r.set_base_model(args.Get("base-model"));
  r.set_quantize(args.Get("quantize", "nf4"));
  r.set_method(args.Get("method"));
  std::map<std::string, double> n;
  for (const char* f : {"priority", "r", "alpha", "dropout", "loftq-iterations", "epochs", "batch-size", "grad-accum", "lr", "weight-decay",
                        "loraplus-lr-ratio", "warmup-ratio", "max-grad-norm", "max-seq-len", "seed", "eval-fraction", "eval-every", "patience",
                        "min-delta", "devices", "dpo-beta"}) {
    auto v = args.Number(f, 0);
    if (!v.ok()) return v.status();
    n[f] = *v;
  }
  r.set_priority(static_cast<int32_t>(n["priority"]));
  r.set_devices(static_cast<int32_t>(n["devices"]));
  v1::LoraSettings* lora = r.mutable_lora();
  lora->set_r(static_cast<int32_t>(n["r"]));
  lora->set_alpha(n["alpha"]);
  if (args.Has("dropout")) lora->set_dropout(n["dropout"]);
  for (const auto& t : absl::StrSplit(args.Get("targets"), ',', absl::SkipEmpty())) lora->add_target_modules(std::string(t));
  lora->set_use_rslora(args.Has("rslora"));
  lora->set_use_dora(args.Has("dora"));
  lora->set_init(args.Get("lora-init"));
  lora->set_loftq_iterations(static_cast<int32_t>(n["loftq-iterations"]));
  v1::Hyperparameters* h = r.mutable_hyperparameters();
  h->set_epochs(static_cast<int32_t>(n["epochs"]));
  h->set_batch_size(static_cast<int32_t>(n["batch-size"]));
  h->set_gradient_accumulation(static_cast<int32_t>(n["grad-accum"]));
  h->set_learning_rate(n["lr"]);
  h->set_weight_decay(n["weight-decay"]);
  h->set_loraplus_lr_ratio(n["loraplus-lr-ratio"]);
  h->set_schedule(args.Get("schedule"));
  if (args.Has("warmup-ratio")) h->set_warmup_ratio(n["warmup-ratio"]);
  h->set_max_grad_norm(n["max-grad-norm"]);
  h->set_max_seq_len(static_cast<int32_t>(n["max-seq-len"]));
  h->set_seed(static_cast<uint64_t>(n["seed"]));
  h->set_gradient_checkpointing(args.Has("gradient-checkpointing"));
  h->set_checkpoint_keep(args.Get("checkpoint-keep"));
  h->set_packing(args.Has("packing"));
  h->set_dpo_beta(n["dpo-beta"]);
  h->set_eval_fraction(n["eval-fraction"]);
  h->set_eval_every_steps(static_cast<int32_t>(n["eval-every"]));
  h->set_early_stopping_patience(static_cast<int32_t>(n["patience"]));
  h->set_early_stopping_min_delta(n["min-delta"]);
  auto job = client.CreateJob(r);
  if (!job.ok()) return job.status();
  if (!args.Has("watch")) {
    if (out.json) out.Message(*job); else out.Table(kJobHeader, {JobRow(*job)});
    return absl::OkStatus();
  }
  if (!out.json) std::fprintf(stderr, "job %s submitted (%s); watching\n", job->job_id().c_str(), job->status().c_str());
  return WatchJob(job->job_id(), client, out);  // ends with the job's final row
}

}  // namespace

absl::Status DatasetsCommand(const std::string& verb, const Args& args, client::Client& client, const Output& out) {
  if (verb == "upload") return UploadDataset(args, client, out);
  if (verb == "list") {
    auto list = client.ListDatasets(static_cast<int>(args.Number("page-size", 100).value_or(100)), args.Get("page-token"));
    if (!list.ok()) return list.status();
    if (out.json) return out.Message(*list), absl::OkStatus();
    std::vector<std::vector<std::string>> rows;
    for (const auto& d : list->datasets()) rows.push_back(DatasetRow(d));
    out.Table(kDatasetHeader, rows);
    return absl::OkStatus();
  }
  auto id = args.Positional(0, "DATASET_ID");
  if (!id.ok()) return id.status();
  if (verb == "get") {
    auto d = client.GetDataset(*id);
    if (!d.ok()) return d.status();
    out.Message(*d);
    return absl::OkStatus();
  }
  if (verb == "delete") return client.DeleteDataset(*id);
  return absl::InvalidArgumentError(absl::StrCat("unknown verb 'datasets ", verb, "' (upload|list|get|delete)"));
}

absl::Status JobsCommand(const std::string& verb, const Args& args, client::Client& client, const Output& out) {
  if (verb == "submit") return SubmitJob(args, client, out);
  if (verb == "list") {
    auto list = client.ListJobs(static_cast<int>(args.Number("page-size", 100).value_or(100)), args.Get("page-token"));
    if (!list.ok()) return list.status();
    if (out.json) return out.Message(*list), absl::OkStatus();
    std::vector<std::vector<std::string>> rows;
    for (const auto& j : list->jobs()) rows.push_back(JobRow(j));
    out.Table(kJobHeader, rows);
    return absl::OkStatus();
  }
  auto id = args.Positional(0, "JOB_ID");
  if (!id.ok()) return id.status();
  if (verb == "watch") return WatchJob(*id, client, out);
  absl::StatusOr<v1::Job> job = verb == "get"      ? client.GetJob(*id)
                                : verb == "cancel" ? client.CancelJob(*id)
                                                   : absl::InvalidArgumentError(absl::StrCat(
                                                         "unknown verb 'jobs ", verb, "' (submit|list|get|watch|cancel)"));
  if (!job.ok()) return job.status();
  if (out.json) out.Message(*job); else out.Table(kJobHeader, {JobRow(*job)});
  return absl::OkStatus();
}

}  // namespace qlorad::ctl
