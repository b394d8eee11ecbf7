#include "core/store/review_repository.h"

#include "absl/strings/str_cat.h"
#include "core/store/judgement_repository.h"
#include "core/util/status_macros.h"

namespace qlorad::store {

absl::Status ReviewRepository::PutSample(const std::string& evaluation_id, const nlohmann::json& sample,
                                         const std::string& at) {
  return db_->With([&](Store& s) {
    return s.InTransaction([&]() -> absl::Status {
      QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare(
                                                "INSERT INTO review_samples (evaluation_id, sample_json, created_at) VALUES (?,?,?) "
                                                "ON CONFLICT(evaluation_id) DO UPDATE SET sample_json = excluded.sample_json, "
                                                "created_at = excluded.created_at"));
      QLORAD_RETURN_IF_ERROR(st.Bind(1, evaluation_id).Bind(2, sample.dump()).Bind(3, at).Run());
      return JudgementRepository(&s).Reset(evaluation_id);
    });
  });
}

absl::StatusOr<nlohmann::json> ReviewRepository::GetSampleIn(Store& s, const std::string& evaluation_id) {
  QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare("SELECT sample_json FROM review_samples WHERE evaluation_id = ?"));
  st.Bind(1, evaluation_id);
  QLORAD_ASSIGN_OR_RETURN(bool found, st.Step());
  if (!found)
    return absl::NotFoundError(
        absl::StrCat("evaluation '", evaluation_id, "' has no exported review sample (hint: export one first)"));
  return nlohmann::json::parse(st.ColumnText(0), nullptr, false);
}

absl::StatusOr<nlohmann::json> ReviewRepository::GetSample(const std::string& evaluation_id) {
  return db_->Read<nlohmann::json>([&](Store& s) { return GetSampleIn(s, evaluation_id); });
}

absl::Status ReviewRepository::AddReviewIn(Store& s, const std::string& evaluation_id, const nlohmann::json& summary,
                                           const std::string& at) {
  QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare(
                                            "INSERT INTO evaluation_reviews (evaluation_id, summary_json, imported_at) "
                                            "VALUES (?,?,?)"));
  return st.Bind(1, evaluation_id).Bind(2, summary.dump()).Bind(3, at).Run();
}

absl::Status ReviewRepository::AddReview(const std::string& evaluation_id, const nlohmann::json& summary,
                                         const std::string& at) {
  return db_->With([&](Store& s) { return AddReviewIn(s, evaluation_id, summary, at); });
}

absl::StatusOr<std::optional<nlohmann::json>> ReviewRepository::LatestReview(const std::string& evaluation_id) {
  return db_->Read<std::optional<nlohmann::json>>([&](Store& s) -> absl::StatusOr<std::optional<nlohmann::json>> {
    QLORAD_ASSIGN_OR_RETURN(Statement st, s.Prepare(
                                              "SELECT summary_json FROM evaluation_reviews WHERE evaluation_id = ? "
                                              "ORDER BY id DESC LIMIT 1"));
    st.Bind(1, evaluation_id);
    QLORAD_ASSIGN_OR_RETURN(bool found, st.Step());
    if (!found) return std::optional<nlohmann::json>();
    return std::optional<nlohmann::json>(nlohmann::json::parse(st.ColumnText(0), nullptr, false));
  });
}

}  // namespace qlorad::store
