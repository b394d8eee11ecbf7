#include "server/daemon/adapters_service.h"
#include "core/util/status_macros.h"

namespace qlorad::server {

void ToProto(const service::AdapterInfo& a, v1::Adapter* out) {
  out->set_adapter_id(a.id);
  out->set_name(a.name);
  out->set_version(a.version);
  out->set_state(a.state);
  out->set_loaded(a.loaded);
  out->set_residency(a.residency);
  out->set_load_error(a.load_error);
  out->set_pinned(a.pinned);
  out->set_placements(a.placements);
  out->set_evictions(a.evictions);
  for (const auto& alias : a.aliases) out->add_aliases(alias);
  out->set_job_id(a.job_id);
  out->set_dataset_id(a.dataset_id);
  out->set_base_fingerprint(a.base_fingerprint);
  out->set_created_at(a.created_at);
  out->set_evaluation_id(a.evaluation_id);
  out->set_path(a.path);
}

void ToProto(const service::PromotionCheck& c, v1::PromotionCheck* out) {
  out->set_applies(c.applies);
  out->set_passed(c.passed);
  out->set_overridden(c.overridden);
  out->set_candidate_id(c.candidate_id);
  out->set_serving_id(c.serving_id);
  out->set_dataset_id(c.dataset_id);
  out->set_metric(c.metric);
  out->set_candidate_evaluation_id(c.candidate_evaluation_id);
  out->set_serving_evaluation_id(c.serving_evaluation_id);
  out->set_candidate_value(c.candidate_value);
  out->set_serving_value(c.serving_value);
  out->set_delta(c.delta);
  out->set_delta_low(c.delta_low);
  out->set_delta_high(c.delta_high);
  out->set_margin(c.margin);
  out->set_message(c.message);
}

namespace {

// INVALID_ARGUMENT naming evidence_review_summary_json when it is not JSON.
absl::StatusOr<service::DecisionInput> Decision(const v1::DecisionRequest& r, const Principal& who) {
  service::DecisionInput input;
  input.actor = who.name;
  input.note = r.note();
  input.risk_class = r.risk_class().empty() ? "minimal" : r.risk_class();
  input.documentation_ref = r.documentation_ref();
  input.evidence_evaluation_ids.assign(r.evidence_evaluation_ids().begin(), r.evidence_evaluation_ids().end());
  if (!r.evidence_review_summary_json().empty()) {
    input.evidence_review_summary = nlohmann::json::parse(r.evidence_review_summary_json(), nullptr, false);
    if (input.evidence_review_summary.is_discarded())
      return absl::InvalidArgumentError("evidence_review_summary_json: not valid JSON");
  }
  return input;
}

}  // namespace

template <typename Get>
grpc::Status AdaptersService::Respond(grpc::ServerContext* c, const char* method, Permission needed, v1::Adapter* out,
                                      Get get) {
  return HandleRpc(d_, c, "Adapters", method, needed, [&](const Principal& who) {
    absl::StatusOr<service::AdapterInfo> info = get(who);
    if (!info.ok()) return ToGrpcStatus(info.status());
    ToProto(*info, out);
    return grpc::Status::OK;
  });
}

grpc::Status AdaptersService::ListAdapters(grpc::ServerContext* c, const v1::ListAdaptersRequest* r,
                                           v1::ListAdaptersResponse* out) {
  return HandleRpc(d_, c, "Adapters", "ListAdapters", Permission::kRead, [&](const Principal&) {
    std::string next;
    auto list = d_.core->ListAdapters({r->page_size(), r->page_token()}, &next);
    if (!list.ok()) return ToGrpcStatus(list.status());
    for (const auto& a : *list) ToProto(a, out->add_adapters());
    out->set_next_page_token(next);
    return grpc::Status::OK;
  });
}

grpc::Status AdaptersService::GetAdapter(grpc::ServerContext* c, const v1::AdapterRef* r, v1::Adapter* out) {
  return Respond(c, "GetAdapter", Permission::kRead, out, [&](const Principal&) { return d_.core->GetAdapter(r->adapter()); });
}

grpc::Status AdaptersService::ImportAdapter(grpc::ServerContext* c, const v1::ImportAdapterRequest* r, v1::Adapter* out) {
  return Respond(c, "ImportAdapter", Permission::kDeploy, out, [&](const Principal& who) {
    return d_.core->ImportAdapter(r->name(), r->path(), r->allow_base_mismatch(), who.name);
  });
}

grpc::Status AdaptersService::LoadAdapter(grpc::ServerContext* c, const v1::LoadAdapterRequest* r, v1::Adapter* out) {
  return Respond(c, "LoadAdapter", Permission::kDeploy, out, [&](const Principal& who) {
    return d_.core->LoadAdapter(r->adapter(), r->allow_base_mismatch(), r->pin(), who.name);
  });
}

grpc::Status AdaptersService::UnloadAdapter(grpc::ServerContext* c, const v1::AdapterRef* r, v1::Adapter* out) {
  return Respond(c, "UnloadAdapter", Permission::kDeploy, out,
                 [&](const Principal& who) { return d_.core->UnloadAdapter(r->adapter(), who.name); });
}

grpc::Status AdaptersService::PromoteAdapter(grpc::ServerContext* c, const v1::PromoteAdapterRequest* r, v1::Adapter* out) {
  return HandleRpc(d_, c, "Adapters", "PromoteAdapter", Permission::kDeploy, [&](const Principal& who) {
    service::PromoteInput input{r->adapter(), r->alias(), who.name, r->override_reason()};
    absl::StatusOr<service::PromoteResult> result = d_.core->Promote(input);
    if (!result.ok()) return ToGrpcStatus(result.status());
    ToProto(result->adapter, out);
    ToProto(result->gate, out->mutable_promotion());
    return grpc::Status::OK;
  });
}

grpc::Status AdaptersService::CheckPromotion(grpc::ServerContext* c, const v1::PromoteAdapterRequest* r,
                                             v1::PromotionCheck* out) {
  return HandleRpc(d_, c, "Adapters", "CheckPromotion", Permission::kRead, [&](const Principal&) {
    absl::StatusOr<service::PromotionCheck> check = d_.core->CheckPromotion(r->adapter(), r->alias());
    if (!check.ok()) return ToGrpcStatus(check.status());
    ToProto(*check, out);
    return grpc::Status::OK;
  });
}

grpc::Status AdaptersService::ApproveAdapter(grpc::ServerContext* c, const v1::DecisionRequest* r, v1::Adapter* out) {
  return Respond(c, "ApproveAdapter", Permission::kDeploy, out,
                 [&](const Principal& who) -> absl::StatusOr<service::AdapterInfo> {
                   QLORAD_ASSIGN_OR_RETURN(service::DecisionInput decision, Decision(*r, who));
                   return d_.core->Decide(r->adapter(), true, decision);
                 });
}

grpc::Status AdaptersService::RejectAdapter(grpc::ServerContext* c, const v1::DecisionRequest* r, v1::Adapter* out) {
  return Respond(c, "RejectAdapter", Permission::kDeploy, out,
                 [&](const Principal& who) -> absl::StatusOr<service::AdapterInfo> {
                   QLORAD_ASSIGN_OR_RETURN(service::DecisionInput decision, Decision(*r, who));
                   return d_.core->Decide(r->adapter(), false, decision);
                 });
}

grpc::Status AdaptersService::DeleteAdapter(grpc::ServerContext* c, const v1::AdapterRef* r, google::protobuf::Empty*) {
  return HandleRpc(d_, c, "Adapters", "DeleteAdapter", Permission::kDeploy,
                   [&](const Principal& who) { return ToGrpcStatus(d_.core->DeleteAdapter(r->adapter(), who.name)); });
}

}  // namespace qlorad::server
