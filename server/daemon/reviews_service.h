// qlorad.v1.Reviews over ServiceCore: the interactive review (the caller's principal
// name is the reviewer) and the audit trail.
#ifndef QLORAD_SERVER_DAEMON_REVIEWS_SERVICE_H_
#define QLORAD_SERVER_DAEMON_REVIEWS_SERVICE_H_

#include "qlorad/v1/reviews.grpc.pb.h"
#include "server/daemon/daemon_context.h"

namespace qlorad::server {

class ReviewsService final : public qlorad::v1::Reviews::Service {
 public:
  explicit ReviewsService(DaemonContext d) : d_(std::move(d)) {}
  grpc::Status ListReviewQueue(grpc::ServerContext* c, const v1::ListReviewQueueRequest* r,
                               v1::ListReviewQueueResponse* out) override;
  grpc::Status GetReviewSession(grpc::ServerContext* c, const v1::GetReviewSessionRequest* r,
                                v1::ReviewSession* out) override;
  grpc::Status SaveJudgement(grpc::ServerContext* c, const v1::SaveJudgementRequest* r,
                             google::protobuf::Empty* out) override;
  grpc::Status SubmitReview(grpc::ServerContext* c, const v1::SubmitReviewRequest* r, v1::ReviewSummary* out) override;
  grpc::Status AuditTrail(grpc::ServerContext* c, const v1::AuditTrailRequest* r, v1::AuditTrailResponse* out) override;

 private:
  DaemonContext d_;
};

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_REVIEWS_SERVICE_H_
