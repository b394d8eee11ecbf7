// qlorad.v1.Jobs over ServiceCore.
#ifndef QLORAD_SERVER_DAEMON_JOBS_SERVICE_H_
#define QLORAD_SERVER_DAEMON_JOBS_SERVICE_H_

#include "qlorad/v1/jobs.grpc.pb.h"
#include "server/daemon/daemon_context.h"

namespace qlorad::server {

class JobsService final : public qlorad::v1::Jobs::Service {
 public:
  explicit JobsService(DaemonContext d) : d_(std::move(d)) {}
  grpc::Status CreateJob(grpc::ServerContext* context, const v1::CreateJobRequest* request, v1::Job* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request, v1::Job* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request, v1::Job* response) override;
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobEvent>* writer) override;

 private:
  DaemonContext d_;
};

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_JOBS_SERVICE_H_
