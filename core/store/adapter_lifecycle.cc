#include "core/store/adapter_lifecycle.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/util/time_util.h"

namespace qlorad::store {
namespace {

absl::Status Required(const std::string& value, const char* field) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  return absl::OkStatus();
}

}  // namespace

std::string AdapterLifecycle::SystemClockNow() { return NowUtcRfc3339(TimePrecision::kMilliseconds); }

AdapterLifecycle::AdapterLifecycle(Store* store, Clock clock)
    : store_(store), clock_(clock ? std::move(clock) : Clock(&AdapterLifecycle::SystemClockNow)), audit_(store) {}

absl::StatusOr<AdapterVersion> AdapterLifecycle::Get(const std::string& adapter_id) {
  auto st = store_->Prepare(
      "SELECT adapter_id, state, evaluation_id, risk_class, deployment, created_at, updated_at "
      "FROM adapter_versions WHERE adapter_id = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, adapter_id);
  auto row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) {
    return absl::NotFoundError(absl::StrCat("adapter '", adapter_id, "' is not registered (hint: RegisterTrained first)"));
  }
  AdapterVersion v;
  v.adapter_id = st->ColumnText(0);
  auto state = ParseAdapterState(st->ColumnText(1));
  if (!state.ok()) return absl::DataLossError(absl::StrCat("adapter '", adapter_id, "': ", state.status().message()));
  v.state = *state;
  v.evaluation_id = st->ColumnText(2);
  v.risk_class = st->ColumnText(3);
  v.deployment = st->ColumnText(4);
  v.created_at = st->ColumnText(5);
  v.updated_at = st->ColumnText(6);
  st->Reset();
  return v;
}

absl::Status AdapterLifecycle::RegisterTrained(const std::string& adapter_id, const std::string& actor,
                                               const nlohmann::json& details) {
  if (absl::Status s = Required(adapter_id, "adapter_id"); !s.ok()) return s;
  if (absl::Status s = Required(actor, "actor"); !s.ok()) return s;
  return store_->InTransaction([&]() -> absl::Status {
    auto existing = Get(adapter_id);
    if (existing.ok()) {
      return absl::AlreadyExistsError(absl::StrCat("adapter '", adapter_id, "' is already registered (state '",
                                                   AdapterStateName(existing->state), "')"));
    }
    if (existing.status().code() != absl::StatusCode::kNotFound) return existing.status();
    const std::string now = clock_();
    auto ins = store_->Prepare(
        "INSERT INTO adapter_versions(adapter_id, state, created_at, updated_at) VALUES (?, 'trained', ?, ?)");
    if (!ins.ok()) return ins.status();
    ins->Bind(1, adapter_id).Bind(2, now).Bind(3, now);
    if (absl::Status s = ins->Run(); !s.ok()) return s;
    AuditEntry e;
    e.at = now;
    e.actor = actor;
    e.entity_type = "adapter";
    e.entity_id = adapter_id;
    e.action = "register";
    e.to_state = AdapterStateName(AdapterState::kTrained);
    e.details = details;
    return audit_.Append(std::move(e)).status();
  });
}

absl::Status AdapterLifecycle::Transition(
    const std::string& adapter_id, const std::string& actor, const std::string& action, AdapterState to,
    const DeploymentPolicy& policy, nlohmann::json details, const Apply& apply) {
  if (absl::Status s = Required(actor, "actor"); !s.ok()) return s;
  return store_->InTransaction([&]() -> absl::Status {
    auto current = Get(adapter_id);
    if (!current.ok()) return current.status();
    if (absl::Status s = CheckTransition(adapter_id, current->state, to, policy); !s.ok()) return s;
    const std::string now = clock_();
    auto upd = store_->Prepare("UPDATE adapter_versions SET state = ?, updated_at = ? WHERE adapter_id = ?");
    if (!upd.ok()) return upd.status();
    upd->Bind(1, AdapterStateName(to)).Bind(2, now).Bind(3, adapter_id);
    if (absl::Status s = upd->Run(); !s.ok()) return s;
    if (apply) {
      if (absl::Status s = apply(*current, now); !s.ok()) return s;
    }
    AuditEntry e;
    e.at = now;
    e.actor = actor;
    e.entity_type = "adapter";
    e.entity_id = adapter_id;
    e.action = action;
    e.from_state = AdapterStateName(current->state);
    e.to_state = AdapterStateName(to);
    e.details = std::move(details);
    return audit_.Append(std::move(e)).status();
  });
}

absl::Status AdapterLifecycle::MarkEvaluated(const std::string& adapter_id, const std::string& actor,
                                             const std::string& evaluation_id) {
  if (absl::Status s = Required(evaluation_id, "evaluation_id"); !s.ok()) return s;
  return Transition(adapter_id, actor, "evaluate", AdapterState::kEvaluated, {}, {{"evaluation_id", evaluation_id}},
                    [&](const AdapterVersion&, const std::string&) -> absl::Status {
                      auto st = store_->Prepare("UPDATE adapter_versions SET evaluation_id = ? WHERE adapter_id = ?");
                      if (!st.ok()) return st.status();
                      st->Bind(1, evaluation_id).Bind(2, adapter_id);
                      return st->Run();
                    });
}

absl::Status AdapterLifecycle::Decide(const std::string& adapter_id, const Decision& d, bool approve) {
  if (absl::Status s = Required(d.actor, "actor"); !s.ok()) return s;
  if (!approve) {
    if (absl::Status s = Required(d.note, "note (a rejection needs a reason)"); !s.ok()) return s;
  }
  if (approve && d.risk_class == RiskClass::kUnacceptable) {
    return absl::FailedPreconditionError(absl::StrCat(
        "adapter '", adapter_id, "': risk class 'unacceptable' (a prohibited practice, EU AI Act Art. 5) can never be approved"));
  }
  if (approve && d.risk_class == RiskClass::kHigh && d.documentation_ref.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "documentation_ref: approving high-risk adapter '", adapter_id,
        "' (EU AI Act Annex III) requires a link or reference to its technical documentation"));
  }
  const char* decision = approve ? "approved" : "rejected";
  nlohmann::json details = {{"decision", decision},
                            {"note", d.note},
                            {"risk_class", RiskClassName(d.risk_class)},
                            {"documentation_ref", d.documentation_ref},
                            {"evidence", {{"evaluation_ids", d.evidence_evaluation_ids},
                                          {"review_summary", d.evidence_review_summary}}}};
  return Transition(adapter_id, d.actor, approve ? "approve" : "reject",
                    approve ? AdapterState::kApproved : AdapterState::kRejected, {}, details,
                    [&](const AdapterVersion& current, const std::string& now) -> absl::Status {
                      if (current.evaluation_id.empty()) {
                        return absl::FailedPreconditionError(
                            absl::StrCat("adapter '", adapter_id, "' has no evaluation record to decide on"));
                      }
                      auto ins = store_->Prepare(
                          "INSERT INTO approval_decisions(adapter_id, decision, actor, decided_at, note, risk_class, "
                          "documentation_ref, evaluation_id) VALUES (?,?,?,?,?,?,?,?)");
                      if (!ins.ok()) return ins.status();
                      ins->Bind(1, adapter_id).Bind(2, decision).Bind(3, d.actor).Bind(4, now).Bind(5, d.note);
                      ins->Bind(6, RiskClassName(d.risk_class)).Bind(7, d.documentation_ref).Bind(8, current.evaluation_id);
                      if (absl::Status s = ins->Run(); !s.ok()) return s;
                      auto upd = store_->Prepare("UPDATE adapter_versions SET risk_class = ? WHERE adapter_id = ?");
                      if (!upd.ok()) return upd.status();
                      upd->Bind(1, RiskClassName(d.risk_class)).Bind(2, adapter_id);
                      return upd->Run();
                    });
}

absl::Status AdapterLifecycle::Approve(const std::string& adapter_id, const Decision& decision) {
  return Decide(adapter_id, decision, true);
}

absl::Status AdapterLifecycle::Reject(const std::string& adapter_id, const Decision& decision) {
  return Decide(adapter_id, decision, false);
}

absl::Status AdapterLifecycle::Deploy(const std::string& adapter_id, const std::string& actor,
                                      const std::string& deployment, const DeploymentPolicy& policy) {
  return DeployAs(adapter_id, actor, deployment, policy, "deploy", nlohmann::json::object(), nullptr);
}

absl::Status AdapterLifecycle::DeployAs(const std::string& adapter_id, const std::string& actor,
                                        const std::string& deployment, const DeploymentPolicy& policy,
                                        const std::string& action, const nlohmann::json& details, const Apply& apply) {
  if (absl::Status s = Required(deployment, "deployment"); !s.ok()) return s;
  nlohmann::json entry = {{"deployment", deployment}, {"require_approval", policy.require_approval}};
  entry.update(details);
  return Transition(adapter_id, actor, action, AdapterState::kDeployed, policy, std::move(entry),
                    [&](const AdapterVersion& current, const std::string& now) -> absl::Status {
                      auto st = store_->Prepare("UPDATE adapter_versions SET deployment = ? WHERE adapter_id = ?");
                      if (!st.ok()) return st.status();
                      st->Bind(1, deployment).Bind(2, adapter_id);
                      if (absl::Status s = st->Run(); !s.ok()) return s;
                      return apply ? apply(current, now) : absl::OkStatus();
                    });
}

absl::Status AdapterLifecycle::Retire(const std::string& adapter_id, const std::string& actor,
                                      const std::string& reason) {
  return RetireAs(adapter_id, actor, "retire", {{"reason", reason}}, nullptr);
}

absl::Status AdapterLifecycle::RetireAs(const std::string& adapter_id, const std::string& actor,
                                        const std::string& action, const nlohmann::json& details, const Apply& apply) {
  return Transition(adapter_id, actor, action, AdapterState::kRetired, {}, details, apply);
}

absl::StatusOr<std::vector<DecisionRecord>> AdapterLifecycle::Decisions(const std::string& adapter_id) {
  auto st = store_->Prepare(
      "SELECT adapter_id, decision, actor, decided_at, note, risk_class, documentation_ref, evaluation_id "
      "FROM approval_decisions WHERE adapter_id = ? ORDER BY id");
  if (!st.ok()) return st.status();
  st->Bind(1, adapter_id);
  return CollectRows<DecisionRecord>(*st, [](const Statement& s) {
    return DecisionRecord{s.ColumnText(0), s.ColumnText(1), s.ColumnText(2), s.ColumnText(3),
                          s.ColumnText(4), s.ColumnText(5), s.ColumnText(6), s.ColumnText(7)};
  });
}

}  // namespace qlorad::store
