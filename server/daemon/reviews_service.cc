#include "server/daemon/reviews_service.h"

namespace qlorad::server {
namespace {

void ToProto(const service::ReviewQueueEntry& e, v1::ReviewQueueEntry* out) {
  out->set_evaluation_id(e.evaluation_id);
  out->set_adapter_id(e.adapter_id);
  out->set_dataset_id(e.dataset_id);
  out->set_created_at(e.created_at);
  out->set_items(e.items);
  out->set_blind(e.blind);
  out->set_rated_by_reviewer(e.rated_by_reviewer);
  out->set_submitted_by_reviewer(e.submitted_by_reviewer);
  for (const auto& name : e.submitted_reviewers) out->add_submitted_reviewers(name);
}

void ToProto(const service::ReviewItemView& v, v1::ReviewItem* out) {
  out->set_item_id(v.item_id);
  out->set_input(v.input);
  out->set_reference(v.reference);
  out->set_output_a(v.output_a);
  out->set_output_b(v.output_b);
  out->set_label_a(v.label_a);
  out->set_label_b(v.label_b);
  out->set_rating_a(v.rating_a);
  out->set_rating_b(v.rating_b);
  out->set_preference(v.preference);
  out->set_comment(v.comment);
}

void ToProto(const service::ReviewSessionInfo& s, v1::ReviewSession* out) {
  out->set_evaluation_id(s.evaluation_id);
  out->set_adapter_id(s.adapter_id);
  out->set_reviewer(s.reviewer);
  out->set_blind(s.blind);
  out->set_submitted(s.submitted);
  out->set_scale_min(s.scale_min);
  out->set_scale_max(s.scale_max);
  for (const auto& item : s.items) ToProto(item, out->add_items());
}

void ToProto(const nlohmann::json& e, v1::AuditEntry* out) {
  out->set_seq(e.value("seq", int64_t{0}));
  out->set_at(e.value("at", ""));
  out->set_actor(e.value("actor", ""));
  out->set_subject(e.value("subject", ""));
  out->set_action(e.value("action", ""));
  out->set_from_state(e.value("from_state", ""));
  out->set_to_state(e.value("to_state", ""));
  out->set_details_json(e.contains("details") ? e["details"].dump() : "{}");
  out->set_hash(e.value("hash", ""));
}

}  // namespace

grpc::Status ReviewsService::ListReviewQueue(grpc::ServerContext* c, const v1::ListReviewQueueRequest*,
                                             v1::ListReviewQueueResponse* out) {
  return HandleRpc(d_, c, "Reviews", "ListReviewQueue", Permission::kReview, [&](const Principal& who) {
    auto queue = d_.core->ListReviewQueue(who.name);
    if (!queue.ok()) return ToGrpcStatus(queue.status());
    for (const auto& entry : *queue) ToProto(entry, out->add_entries());
    return grpc::Status::OK;
  });
}

grpc::Status ReviewsService::GetReviewSession(grpc::ServerContext* c, const v1::GetReviewSessionRequest* r,
                                              v1::ReviewSession* out) {
  return HandleRpc(d_, c, "Reviews", "GetReviewSession", Permission::kReview, [&](const Principal& who) {
    auto session = d_.core->GetReviewSession(r->evaluation_id(), who.name);
    if (!session.ok()) return ToGrpcStatus(session.status());
    ToProto(*session, out);
    return grpc::Status::OK;
  });
}

grpc::Status ReviewsService::SaveJudgement(grpc::ServerContext* c, const v1::SaveJudgementRequest* r,
                                           google::protobuf::Empty*) {
  return HandleRpc(d_, c, "Reviews", "SaveJudgement", Permission::kReview, [&](const Principal& who) {
    service::ItemJudgement j;
    j.item_id = r->item_id();
    j.rating_a = r->rating_a();
    j.rating_b = r->rating_b();
    j.preference = r->preference();
    j.comment = r->comment();
    return ToGrpcStatus(d_.core->SaveJudgement(r->evaluation_id(), who.name, j));
  });
}

grpc::Status ReviewsService::SubmitReview(grpc::ServerContext* c, const v1::SubmitReviewRequest* r,
                                          v1::ReviewSummary* out) {
  return HandleRpc(d_, c, "Reviews", "SubmitReview", Permission::kReview, [&](const Principal& who) {
    auto summary = d_.core->SubmitReview(r->evaluation_id(), who.name);
    if (!summary.ok()) return ToGrpcStatus(summary.status());
    out->set_summary_json(summary->dump());
    return grpc::Status::OK;
  });
}

grpc::Status ReviewsService::AuditTrail(grpc::ServerContext* c, const v1::AuditTrailRequest* r,
                                        v1::AuditTrailResponse* out) {
  return HandleRpc(d_, c, "Reviews", "AuditTrail", Permission::kRead, [&](const Principal&) {
    auto trail = d_.core->AuditTrail(r->subject());
    if (!trail.ok()) return ToGrpcStatus(trail.status());
    for (const auto& entry : *trail) ToProto(entry, out->add_entries());
    return grpc::Status::OK;
  });
}

}  // namespace qlorad::server
