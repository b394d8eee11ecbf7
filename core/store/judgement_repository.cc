#include "core/store/judgement_repository.h"

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace qlorad::store {
namespace {

constexpr char kColumns[] =
    "evaluation_id, reviewer, item_id, baseline_rating, adapter_rating, preference, comment, saved_at";

StoredJudgement ReadJudgement(const Statement& st) {
  StoredJudgement j;
  j.evaluation_id = st.ColumnText(0);
  j.reviewer = st.ColumnText(1);
  j.item_id = st.ColumnText(2);
  j.baseline_rating = static_cast<int>(st.ColumnInt64(3));
  j.adapter_rating = static_cast<int>(st.ColumnInt64(4));
  j.preference = st.ColumnText(5);
  j.comment = st.ColumnText(6);
  j.saved_at = st.ColumnText(7);
  return j;
}

}  // namespace

absl::Status JudgementRepository::Save(const StoredJudgement& j) {
  return store_->InTransaction([&]() -> absl::Status {
    QLORAD_ASSIGN_OR_RETURN(std::optional<std::string> submitted, SubmittedAt(j.evaluation_id, j.reviewer));
    if (submitted)
      return absl::FailedPreconditionError(absl::StrCat("reviewer '", j.reviewer, "' submitted the review of evaluation '",
                                                        j.evaluation_id, "' at ", *submitted,
                                                        "; judgements can no longer change"));
    QLORAD_ASSIGN_OR_RETURN(Statement st, store_->Prepare(absl::StrCat(
                                              "INSERT INTO review_judgements (", kColumns, ") VALUES (?,?,?,?,?,?,?,?) "
                                              "ON CONFLICT(evaluation_id, reviewer, item_id) DO UPDATE SET "
                                              "baseline_rating = excluded.baseline_rating, "
                                              "adapter_rating = excluded.adapter_rating, preference = excluded.preference, "
                                              "comment = excluded.comment, saved_at = excluded.saved_at")));
    return st.Bind(1, j.evaluation_id).Bind(2, j.reviewer).Bind(3, j.item_id).Bind(4, j.baseline_rating)
        .Bind(5, j.adapter_rating).Bind(6, j.preference).Bind(7, j.comment).Bind(8, j.saved_at).Run();
  });
}

absl::StatusOr<std::vector<StoredJudgement>> JudgementRepository::List(const std::string& evaluation_id,
                                                                       const std::string& reviewer) {
  QLORAD_ASSIGN_OR_RETURN(Statement st, store_->Prepare(absl::StrCat(
                                            "SELECT ", kColumns, " FROM review_judgements WHERE evaluation_id = ?",
                                            reviewer.empty() ? "" : " AND reviewer = ?", " ORDER BY reviewer, item_id")));
  st.Bind(1, evaluation_id);
  if (!reviewer.empty()) st.Bind(2, reviewer);
  return CollectRows<StoredJudgement>(st, ReadJudgement);
}

absl::StatusOr<std::vector<StoredJudgement>> JudgementRepository::ListSubmitted(const std::string& evaluation_id) {
  QLORAD_ASSIGN_OR_RETURN(Statement st, store_->Prepare(absl::StrCat(
                                            "SELECT ", kColumns, " FROM review_judgements j WHERE evaluation_id = ?1 "
                                            "AND EXISTS (SELECT 1 FROM review_submissions s WHERE s.evaluation_id = ?1 "
                                            "AND s.reviewer = j.reviewer) ORDER BY reviewer, item_id")));
  st.Bind(1, evaluation_id);
  return CollectRows<StoredJudgement>(st, ReadJudgement);
}

absl::Status JudgementRepository::MarkSubmitted(const std::string& evaluation_id, const std::string& reviewer,
                                                const std::string& at) {
  return store_->InTransaction([&]() -> absl::Status {
    QLORAD_ASSIGN_OR_RETURN(std::optional<std::string> submitted, SubmittedAt(evaluation_id, reviewer));
    if (submitted)
      return absl::FailedPreconditionError(absl::StrCat("reviewer '", reviewer, "' already submitted the review of evaluation '",
                                                        evaluation_id, "' at ", *submitted));
    QLORAD_ASSIGN_OR_RETURN(Statement st, store_->Prepare(
                                              "INSERT INTO review_submissions (evaluation_id, reviewer, submitted_at) "
                                              "VALUES (?,?,?)"));
    return st.Bind(1, evaluation_id).Bind(2, reviewer).Bind(3, at).Run();
  });
}

absl::StatusOr<std::optional<std::string>> JudgementRepository::SubmittedAt(const std::string& evaluation_id,
                                                                            const std::string& reviewer) {
  QLORAD_ASSIGN_OR_RETURN(Statement st, store_->Prepare(
                                            "SELECT submitted_at FROM review_submissions WHERE evaluation_id = ? "
                                            "AND reviewer = ?"));
  st.Bind(1, evaluation_id).Bind(2, reviewer);
  QLORAD_ASSIGN_OR_RETURN(bool found, st.Step());
  if (!found) return std::optional<std::string>();
  return std::optional<std::string>(st.ColumnText(0));
}

absl::StatusOr<std::vector<std::string>> JudgementRepository::SubmittedReviewers(const std::string& evaluation_id) {
  QLORAD_ASSIGN_OR_RETURN(Statement st, store_->Prepare(
                                            "SELECT reviewer FROM review_submissions WHERE evaluation_id = ? ORDER BY reviewer"));
  st.Bind(1, evaluation_id);
  return CollectRows<std::string>(st, [](const Statement& row) { return row.ColumnText(0); });
}

absl::Status JudgementRepository::Reset(const std::string& evaluation_id) {
  return store_->InTransaction([&]() -> absl::Status {
    for (const char* table : {"review_judgements", "review_submissions"}) {
      QLORAD_ASSIGN_OR_RETURN(Statement st, store_->Prepare(absl::StrCat("DELETE FROM ", table, " WHERE evaluation_id = ?")));
      QLORAD_RETURN_IF_ERROR(st.Bind(1, evaluation_id).Run());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<ReviewSampleRow>> JudgementRepository::ListSamples() {
  // JSON1 (built into SQLite >= 3.38) reads the few fields without parsing whole records.
  QLORAD_ASSIGN_OR_RETURN(Statement st, store_->Prepare(
                                            "SELECT r.evaluation_id, e.adapter_id, "
                                            "COALESCE(json_extract(e.record_json, '$.dataset_id'), ''), e.created_at, "
                                            "json_array_length(r.sample_json, '$.items'), "
                                            "COALESCE(json_extract(r.sample_json, '$.blind'), 0) "
                                            "FROM review_samples r JOIN evaluation_records e ON e.id = r.evaluation_id "
                                            "ORDER BY e.created_at DESC, e.id DESC"));
  return CollectRows<ReviewSampleRow>(st, [](const Statement& row) {
    ReviewSampleRow r;
    r.evaluation_id = row.ColumnText(0);
    r.adapter_id = row.ColumnText(1);
    r.dataset_id = row.ColumnText(2);
    r.created_at = row.ColumnText(3);
    r.items = row.ColumnInt64(4);
    r.blind = row.ColumnInt64(5) != 0;
    return r;
  });
}

}  // namespace qlorad::store
