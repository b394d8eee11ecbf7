#include "core/train/training_checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include <ATen/ATen.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/model/safetensors.h"
#include "core/model/safetensors_writer.h"
#include "core/model/tensor_io.h"
#include "core/util/file_util.h"
#include "core/util/sha256.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace {

namespace fs = std::filesystem;
constexpr char kPrefix[] = "checkpoint-";
constexpr char kTensors[] = "state.safetensors";
constexpr char kState[] = "trainer_state.json";

nlohmann::json ProgressToJson(const TrainerProgress& p) {
  nlohmann::json j = {{"step", p.step},
          {"epoch", p.epoch},
          {"next_batch", p.next_batch},
          {"tokens_seen", p.tokens_seen},
          {"epoch_loss", p.epoch_loss},
          {"epoch_batches", p.epoch_batches},
          {"step_losses", p.step_losses},
          {"epoch_losses", p.epoch_losses},
          {"eval_losses", p.eval_losses},
          {"eval_steps", p.eval_steps},
          {"elapsed_seconds", p.elapsed_seconds}};
  if (!p.dpo_steps.empty() || !p.dpo_eval_start.empty())
    j["dpo"] = {{"steps", p.dpo_steps}, {"evals", p.dpo_evals}, {"eval_start", p.dpo_eval_start}};
  return j;
}

TrainerProgress ProgressFromJson(const nlohmann::json& j) {
  TrainerProgress p;
  p.step = j.at("step").get<int64_t>();
  p.epoch = j.at("epoch").get<int64_t>();
  p.next_batch = j.at("next_batch").get<int64_t>();
  p.tokens_seen = j.at("tokens_seen").get<int64_t>();
  p.epoch_loss = j.at("epoch_loss").get<double>();
  p.epoch_batches = j.at("epoch_batches").get<int64_t>();
  p.step_losses = j.at("step_losses").get<std::vector<double>>();
  p.epoch_losses = j.at("epoch_losses").get<std::vector<double>>();
  if (j.contains("eval_losses")) p.eval_losses = j.at("eval_losses").get<std::vector<double>>();
  if (j.contains("eval_steps")) p.eval_steps = j.at("eval_steps").get<std::vector<int64_t>>();
  p.elapsed_seconds = j.at("elapsed_seconds").get<double>();
  if (j.contains("dpo")) {
    const nlohmann::json& dpo = j.at("dpo");
    p.dpo_steps = dpo.at("steps").get<std::vector<std::vector<double>>>();
    p.dpo_evals = dpo.at("evals").get<std::vector<std::vector<double>>>();
    p.dpo_eval_start = dpo.at("eval_start").get<std::vector<double>>();
  }
  return p;
}

// Checkpoint directories under `dir`, newest (highest step) first.
std::vector<std::pair<int64_t, fs::path>> ListCheckpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    int64_t step = 0;
    if (name.rfind(kPrefix, 0) == 0 && absl::SimpleAtoi(name.substr(sizeof(kPrefix) - 1), &step) && entry.is_directory())
      found.emplace_back(step, entry.path());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return found;
}

absl::Status WriteInto(const std::string& tmp, const TrainingCheckpoint& c) {
  std::vector<NamedTensor> tensors;
  nlohmann::json adam_steps = nlohmann::json::array();
  for (size_t i = 0; i < c.params.size(); ++i) {
    tensors.push_back({absl::StrCat("param.", i), c.params[i].detach().to(at::kCPU).contiguous()});
    const AdamMoments& m = c.moments[i];
    adam_steps.push_back(m.step);
    if (m.step == 0) continue;
    tensors.push_back({absl::StrCat("exp_avg.", i), m.exp_avg.detach().to(at::kCPU).contiguous()});
    tensors.push_back({absl::StrCat("exp_avg_sq.", i), m.exp_avg_sq.detach().to(at::kCPU).contiguous()});
  }
  QLORAD_ASSIGN_OR_RETURN(std::vector<TensorSpec> specs, SpecsOf(tensors));
  const std::string tensor_path = tmp + "/" + kTensors;
  QLORAD_RETURN_IF_ERROR(WriteSafetensors(tensor_path, specs, {{"format", "qlorad-training-checkpoint"}}, FillerOf(tensors)));
  QLORAD_ASSIGN_OR_RETURN(std::string digest, Sha256File(tensor_path));
  nlohmann::json state = {{"format_version", 1},
                          {"progress", ProgressToJson(c.progress)},
                          {"num_params", c.params.size()},
                          {"adam_steps", adam_steps},
                          {"run_identity", c.run_identity},
                          {"state_sha256", digest}};
  return WriteFileAtomically(tmp + "/" + kState, state.dump(1) + "\n");
}

absl::StatusOr<TrainingCheckpoint> ReadOne(const fs::path& path) {
  QLORAD_ASSIGN_OR_RETURN(std::string text, ReadFileToString((path / kState).string()));
  nlohmann::json state = nlohmann::json::parse(text, nullptr, false);
  if (state.is_discarded() || !state.is_object()) return absl::DataLossError(absl::StrCat(kState, " is not valid JSON"));
  const std::string tensor_path = (path / kTensors).string();
  QLORAD_ASSIGN_OR_RETURN(std::string digest, Sha256File(tensor_path));
  if (digest != state.value("state_sha256", ""))
    return absl::DataLossError(absl::StrCat(kTensors, " does not match the SHA-256 in ", kState, " (truncated write?)"));
  TrainingCheckpoint c;
  c.path = path.string();
  try {
    c.progress = ProgressFromJson(state.at("progress"));
    c.run_identity = state.at("run_identity").get<std::string>();
    const auto adam_steps = state.at("adam_steps").get<std::vector<int64_t>>();
    const size_t n = state.at("num_params").get<size_t>();
    if (adam_steps.size() != n) return absl::DataLossError("adam_steps and num_params disagree");
    QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(tensor_path));
    auto read = [&](const std::string& name) -> absl::StatusOr<at::Tensor> {
      const TensorInfo* info = file->Find(name);
      if (info == nullptr) return absl::DataLossError(absl::StrCat("tensor '", name, "' is missing from ", kTensors));
      QLORAD_ASSIGN_OR_RETURN(at::Tensor view, ViewTensor(*file, *info));
      return view.clone();  // own the bytes: the mapping closes with `file`
    };
    for (size_t i = 0; i < n; ++i) {
      QLORAD_ASSIGN_OR_RETURN(at::Tensor param, read(absl::StrCat("param.", i)));
      c.params.push_back(param);
      AdamMoments m;
      m.step = adam_steps[i];
      if (m.step > 0) {
        QLORAD_ASSIGN_OR_RETURN(m.exp_avg, read(absl::StrCat("exp_avg.", i)));
        QLORAD_ASSIGN_OR_RETURN(m.exp_avg_sq, read(absl::StrCat("exp_avg_sq.", i)));
      }
      c.moments.push_back(m);
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat(kState, ": ", e.what()));
  }
  return c;
}

}  // namespace

absl::StatusOr<std::string> WriteTrainingCheckpoint(const CheckpointOptions& options, const TrainingCheckpoint& checkpoint) {
  if (options.dir.empty()) return absl::InvalidArgumentError("checkpoint dir is empty");
  if (checkpoint.params.size() != checkpoint.moments.size())
    return absl::InvalidArgumentError("checkpoint: params and moments disagree in count");
  QLORAD_RETURN_IF_ERROR(EnsureDirectory(options.dir));
  const std::string name = absl::StrCat(kPrefix, checkpoint.progress.step);
  const std::string tmp = absl::StrCat(options.dir, "/.tmp-", name), final_path = options.dir + "/" + name;
  std::error_code ec;
  fs::remove_all(tmp, ec);
  QLORAD_RETURN_IF_ERROR(EnsureDirectory(tmp));
  absl::Status written = CatchTorchErrors("writing a training checkpoint", [&] { return WriteInto(tmp, checkpoint); });
  if (written.ok()) written = SyncDirectory(tmp);
  if (!written.ok()) {
    fs::remove_all(tmp, ec);
    return written;
  }
  fs::remove_all(final_path, ec);
  fs::rename(tmp, final_path, ec);
  if (ec) {
    absl::Status moved = ErrnoStatus(ec.value(), "cannot move the checkpoint into place", final_path);
    fs::remove_all(tmp, ec);
    return moved;
  }
  QLORAD_RETURN_IF_ERROR(SyncDirectory(options.dir));
  auto all = ListCheckpoints(options.dir);
  for (size_t i = std::max(options.keep, 1); i < all.size(); ++i) fs::remove_all(all[i].second, ec);
  return final_path;
}

absl::StatusOr<std::optional<TrainingCheckpoint>> ReadLatestCheckpoint(const std::string& dir,
                                                                      std::vector<std::string>* skipped) {
  for (const auto& [step, path] : ListCheckpoints(dir)) {
    absl::StatusOr<TrainingCheckpoint> c = CatchTorchErrors("reading a training checkpoint", [&] { return ReadOne(path); });
    if (c.ok() && c->progress.step == step) return std::optional<TrainingCheckpoint>(std::move(*c));
    if (skipped != nullptr)
      skipped->push_back(absl::StrCat(path.string(), ": ", c.ok() ? "step does not match its name" : c.status().ToString()));
  }
  return std::optional<TrainingCheckpoint>();
}

}  // namespace qlorad
