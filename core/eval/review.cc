#include "core/eval/review.h"

#include <algorithm>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/eval/bootstrap.h"
#include "core/eval/csv.h"

namespace qlorad::eval {
namespace {

const std::vector<std::string>& Columns(bool blind) {
  static const std::vector<std::string> kPlain = {"item_id",        "input",          "reference",
                                                  "baseline_output", "adapter_output", "rating_baseline",
                                                  "rating_adapter", "preference",     "comment"};
  static const std::vector<std::string> kBlind = {"item_id",  "input",    "reference",  "output_a", "output_b",
                                                  "rating_a", "rating_b", "preference", "comment"};
  return blind ? kBlind : kPlain;
}

// The two outputs in export order (A, B) for an item.
std::pair<std::string, std::string> Outputs(const ReviewSample& s, const ReviewItem& item) {
  if (s.blind && s.a_is_adapter.at(item.id)) return {item.adapter_output, item.baseline_output};
  return {item.baseline_output, item.adapter_output};
}

// Raw cells of one reviewer row, keyed by column name.
using Row = std::map<std::string, std::string>;

absl::StatusOr<Rating> ParseRow(const ReviewSample& s, const std::string& reviewer, const Row& row,
                                const std::string& where, std::set<std::string>* seen, bool* skip) {
  *skip = false;
  auto get = [&row](const std::string& k) {
    auto it = row.find(k);
    return it == row.end() ? std::string() : it->second;
  };
  const std::string id = get("item_id");
  auto item = std::find_if(s.items.begin(), s.items.end(), [&id](const ReviewItem& i) { return i.id == id; });
  if (item == s.items.end()) {
    return absl::NotFoundError(absl::StrCat(where, ": item_id '", id,
                                            "' is not in the review sample (hint: wrong sample or edited ids?)"));
  }
  if (!seen->insert(id).second) return absl::InvalidArgumentError(absl::StrCat(where, ": item_id '", id, "' rated twice"));
  const std::string col1 = s.blind ? "rating_a" : "rating_baseline";
  const std::string col2 = s.blind ? "rating_b" : "rating_adapter";
  const std::string r1 = get(col1), r2 = get(col2), pref = get("preference");
  if (r1.empty() && r2.empty() && pref.empty()) {
    *skip = true;
    return Rating{};
  }
  auto parse = [&](const std::string& col, const std::string& v) -> absl::StatusOr<int> {
    int x = 0;
    if (!absl::SimpleAtoi(v, &x) || x < s.scale_min || x > s.scale_max) {
      return absl::InvalidArgumentError(absl::StrCat(where, ", column ", col, ": rating '", v,
                                                     "' is not an integer in [", s.scale_min, ", ", s.scale_max, "]"));
    }
    return x;
  };
  auto a = parse(col1, r1);
  if (!a.ok()) return a.status();
  auto b = parse(col2, r2);
  if (!b.ok()) return b.status();
  Rating r;
  r.item_id = id;
  r.reviewer = reviewer;
  r.comment = get("comment");
  const bool swap = s.blind && s.a_is_adapter.at(id);
  r.baseline_rating = swap ? *b : *a;
  r.adapter_rating = swap ? *a : *b;
  if (pref.empty()) {
    r.preference = Preference::kNone;
  } else if (pref == "tie") {
    r.preference = Preference::kTie;
  } else if (s.blind && (pref == "A" || pref == "B")) {
    r.preference = (pref == "A") == swap ? Preference::kAdapter : Preference::kBaseline;
  } else if (!s.blind && (pref == "baseline" || pref == "adapter")) {
    r.preference = pref == "adapter" ? Preference::kAdapter : Preference::kBaseline;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(where, ", column preference: '", pref, "' is not one of ",
                                                   s.blind ? "A, B, tie" : "baseline, adapter, tie", " or blank"));
  }
  return r;
}

std::optional<Agreement> PairwiseAgreement(
    const std::map<std::string, std::map<std::string, std::string>>& by_reviewer) {
  // by_reviewer: reviewer -> (judgement key -> label)
  if (by_reviewer.size() < 2) return std::nullopt;
  Agreement total;
  double agree_sum = 0, kappa_sum = 0;
  int pairs = 0, kappa_pairs = 0;
  bool kappa_undefined = false;
  for (auto i = by_reviewer.begin(); i != by_reviewer.end(); ++i) {
    for (auto j = std::next(i); j != by_reviewer.end(); ++j) {
      std::vector<std::string> a, b;
      for (const auto& [key, label] : i->second) {
        auto it = j->second.find(key);
        if (it != j->second.end()) {
          a.push_back(label);
          b.push_back(it->second);
        }
      }
      if (a.empty()) continue;
      int64_t same = 0;
      for (size_t k = 0; k < a.size(); ++k) same += a[k] == b[k];
      agree_sum += static_cast<double>(same) / a.size();
      total.items += static_cast<int64_t>(a.size());
      ++pairs;
      auto kappa = CohenKappa(a, b);
      if (kappa) {
        kappa_sum += *kappa;
        ++kappa_pairs;
      } else {
        kappa_undefined = true;
      }
    }
  }
  if (pairs == 0) return std::nullopt;
  total.percent_agreement = agree_sum / pairs;
  if (kappa_pairs > 0 && !kappa_undefined) total.cohen_kappa = kappa_sum / kappa_pairs;
  return total;
}

nlohmann::json AgreementToJson(const std::optional<Agreement>& a) {
  if (!a) return nullptr;
  return {{"judgements", a->items},
          {"percent_agreement", a->percent_agreement},
          {"cohen_kappa", a->cohen_kappa ? nlohmann::json(*a->cohen_kappa) : nlohmann::json(nullptr)}};
}

}  // namespace

absl::StatusOr<ReviewSample> SelectReviewSample(const std::vector<ReviewItem>& holdout,
                                                const ReviewExportOptions& o) {
  if (o.sample_size < 50 || o.sample_size > 100) {
    return absl::InvalidArgumentError(absl::StrCat("sample_size: ", o.sample_size, " is outside [50, 100]"));
  }
  if (o.scale_min >= o.scale_max) {
    return absl::InvalidArgumentError(absl::StrCat("rating scale [", o.scale_min, ", ", o.scale_max, "] is empty"));
  }
  if (holdout.empty()) return absl::InvalidArgumentError("hold-out: no items to review");
  std::set<std::string> ids;
  for (const auto& item : holdout) {
    if (item.id.empty()) return absl::InvalidArgumentError("hold-out: an item has an empty id");
    if (!ids.insert(item.id).second) return absl::InvalidArgumentError(absl::StrCat("hold-out: duplicate id '", item.id, "'"));
  }
  ReviewSample s;
  s.blind = o.blind;
  s.seed = o.seed;
  s.scale_min = o.scale_min;
  s.scale_max = o.scale_max;
  std::vector<size_t> order(holdout.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  SplitMix64 rng(o.seed);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.Uniform(i)]);
  size_t k = static_cast<size_t>(o.sample_size);
  if (holdout.size() < k) {
    s.note = absl::StrCat("the hold-out has only ", holdout.size(), " items (< ", o.sample_size, "): all are included");
    k = holdout.size();
  }
  order.resize(k);
  std::sort(order.begin(), order.end());
  for (size_t i : order) {
    s.items.push_back(holdout[i]);
    if (o.blind) s.a_is_adapter[holdout[i].id] = (rng.Next() & 1) != 0;
  }
  return s;
}

std::string ReviewSampleToCsv(const ReviewSample& s) {
  std::string out = CsvRecord(Columns(s.blind));
  for (const auto& item : s.items) {
    auto [a, b] = Outputs(s, item);
    out += CsvRecord({item.id, item.input, item.reference, a, b, "", "", "", ""});
  }
  return out;
}

std::string ReviewSampleToJsonl(const ReviewSample& s) {
  const auto& cols = Columns(s.blind);
  std::string out;
  for (const auto& item : s.items) {
    auto [a, b] = Outputs(s, item);
    nlohmann::json j = {{cols[0], item.id}, {cols[1], item.input}, {cols[2], item.reference}, {cols[3], a},
                        {cols[4], b},       {cols[5], nullptr},    {cols[6], nullptr},       {cols[7], nullptr},
                        {cols[8], ""}};
    out += j.dump() + "\n";
  }
  return out;
}

nlohmann::json ReviewKeyToJson(const ReviewSample& s) {
  nlohmann::json key = nlohmann::json::object();
  for (const auto& [id, a_adapter] : s.a_is_adapter) {
    key[id] = {{"A", a_adapter ? "adapter" : "baseline"}, {"B", a_adapter ? "baseline" : "adapter"}};
  }
  return key;
}

nlohmann::json ReviewSampleToJson(const ReviewSample& s) {
  nlohmann::json items = nlohmann::json::array();
  for (const auto& i : s.items) {
    items.push_back({{"id", i.id}, {"input", i.input}, {"reference", i.reference},
                     {"baseline_output", i.baseline_output}, {"adapter_output", i.adapter_output}});
  }
  return {{"blind", s.blind}, {"seed", s.seed},       {"scale", {s.scale_min, s.scale_max}},
          {"note", s.note},   {"items", items},       {"key", ReviewKeyToJson(s)}};
}

absl::StatusOr<ReviewSample> ReviewSampleFromJson(const nlohmann::json& j) {
  try {
    ReviewSample s;
    s.blind = j.at("blind").get<bool>();
    s.seed = j.at("seed").get<uint64_t>();
    s.scale_min = j.at("scale").at(0).get<int>();
    s.scale_max = j.at("scale").at(1).get<int>();
    s.note = j.at("note").get<std::string>();
    for (const auto& i : j.at("items")) {
      s.items.push_back({i.at("id").get<std::string>(), i.at("input").get<std::string>(),
                         i.at("reference").get<std::string>(), i.at("baseline_output").get<std::string>(),
                         i.at("adapter_output").get<std::string>()});
    }
    for (const auto& [id, k] : j.at("key").items()) s.a_is_adapter[id] = k.at("A").get<std::string>() == "adapter";
    if (s.blind && s.a_is_adapter.size() != s.items.size()) {
      return absl::InvalidArgumentError("review sample: the blind key does not cover every item");
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("review sample JSON: ", e.what()));
  }
}

const char* PreferenceName(Preference p) {
  switch (p) {
    case Preference::kBaseline: return "baseline";
    case Preference::kAdapter: return "adapter";
    case Preference::kTie: return "tie";
    case Preference::kNone: break;
  }
  return "none";
}

absl::StatusOr<std::vector<Rating>> ImportRatingsCsv(const ReviewSample& s, const std::string& reviewer,
                                                     const std::string& csv_text) {
  if (reviewer.empty()) return absl::InvalidArgumentError("reviewer: name is empty");
  auto records = ParseCsv(csv_text);
  if (!records.ok()) return records.status();
  if (records->empty()) return absl::InvalidArgumentError("ratings CSV: empty file (no header)");
  const auto& header = (*records)[0];
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < header.size(); ++i) col[header[i]] = i;
  for (const std::string& needed : Columns(s.blind)) {
    if (!col.count(needed)) {
      return absl::InvalidArgumentError(absl::StrCat("ratings CSV header: missing column '", needed, "'",
                                                     s.blind ? " (this sample is blind: rating_a/rating_b)" : ""));
    }
  }
  std::vector<Rating> out;
  std::set<std::string> seen;
  for (size_t r = 1; r < records->size(); ++r) {
    const auto& rec = (*records)[r];
    if (rec.size() == 1 && rec[0].empty()) continue;  // blank line
    Row row;
    for (const auto& [name, idx] : col) row[name] = idx < rec.size() ? rec[idx] : "";
    bool skip = false;
    auto rating = ParseRow(s, reviewer, row, absl::StrCat("ratings CSV record ", r + 1), &seen, &skip);
    if (!rating.ok()) return rating.status();
    if (!skip) out.push_back(*std::move(rating));
  }
  return out;
}

absl::StatusOr<std::vector<Rating>> ImportRatingsJsonl(const ReviewSample& s, const std::string& reviewer,
                                                       const std::string& jsonl_text) {
  if (reviewer.empty()) return absl::InvalidArgumentError("reviewer: name is empty");
  std::vector<Rating> out;
  std::set<std::string> seen;
  size_t start = 0;
  int line = 0;
  while (start < jsonl_text.size()) {
    size_t end = jsonl_text.find('\n', start);
    if (end == std::string::npos) end = jsonl_text.size();
    const std::string text = jsonl_text.substr(start, end - start);
    start = end + 1;
    ++line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat("ratings JSONL line ", line, ": not a JSON object"));
    }
    Row row;
    for (const auto& [k, v] : j.items()) {
      if (v.is_string()) row[k] = v.get<std::string>();
      else if (v.is_number_integer()) row[k] = std::to_string(v.get<int64_t>());
      else if (!v.is_null()) row[k] = v.dump();
    }
    bool skip = false;
    auto rating = ParseRow(s, reviewer, row, absl::StrCat("ratings JSONL line ", line), &seen, &skip);
    if (!rating.ok()) return rating.status();
    if (!skip) out.push_back(*std::move(rating));
  }
  return out;
}

std::optional<double> CohenKappa(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  if (a.size() != b.size() || a.empty()) return std::nullopt;
  std::map<std::string, double> pa, pb;
  double agree = 0;
  const double n = static_cast<double>(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    pa[a[i]] += 1 / n;
    pb[b[i]] += 1 / n;
    agree += a[i] == b[i] ? 1 / n : 0;
  }
  double pe = 0;
  for (const auto& [label, p] : pa) {
    auto it = pb.find(label);
    if (it != pb.end()) pe += p * it->second;
  }
  if (1 - pe <= 1e-12) return std::nullopt;
  return (agree - pe) / (1 - pe);
}

absl::StatusOr<ReviewSummary> SummariseReview(const std::vector<Rating>& ratings) {
  ReviewSummary s;
  std::set<std::pair<std::string, std::string>> seen;
  std::set<std::string> reviewers;
  std::map<std::string, std::map<std::string, std::string>> rating_labels, pref_labels;
  for (const Rating& r : ratings) {
    if (!seen.insert({r.reviewer, r.item_id}).second) {
      return absl::InvalidArgumentError(absl::StrCat("reviewer '", r.reviewer, "' rated item '", r.item_id, "' twice"));
    }
    reviewers.insert(r.reviewer);
    s.mean_baseline_rating += r.baseline_rating;
    s.mean_adapter_rating += r.adapter_rating;
    if (r.preference == Preference::kAdapter) ++s.prefer_adapter;
    if (r.preference == Preference::kBaseline) ++s.prefer_baseline;
    if (r.preference == Preference::kTie) ++s.ties;
    rating_labels[r.reviewer][r.item_id + "\x1f" "baseline"] = std::to_string(r.baseline_rating);
    rating_labels[r.reviewer][r.item_id + "\x1f" "adapter"] = std::to_string(r.adapter_rating);
    if (r.preference != Preference::kNone) pref_labels[r.reviewer][r.item_id] = PreferenceName(r.preference);
  }
  s.ratings = static_cast<int64_t>(ratings.size());
  if (s.ratings > 0) {
    s.mean_baseline_rating /= s.ratings;
    s.mean_adapter_rating /= s.ratings;
  }
  s.reviewers.assign(reviewers.begin(), reviewers.end());
  s.rating_agreement = PairwiseAgreement(rating_labels);
  s.preference_agreement = PairwiseAgreement(pref_labels);
  s.win_rate = ComputeWinRate(s.prefer_adapter, s.prefer_baseline, s.ties);
  s.all = ratings;
  return s;
}

nlohmann::json ReviewSummaryToJson(const ReviewSummary& s) {
  nlohmann::json all = nlohmann::json::array();
  for (const Rating& r : s.all) {
    all.push_back({{"item_id", r.item_id}, {"reviewer", r.reviewer}, {"baseline_rating", r.baseline_rating},
                   {"adapter_rating", r.adapter_rating}, {"preference", PreferenceName(r.preference)},
                   {"comment", r.comment}});
  }
  return {{"reviewers", s.reviewers},
          {"ratings", s.ratings},
          {"mean_baseline_rating", s.mean_baseline_rating},
          {"mean_adapter_rating", s.mean_adapter_rating},
          {"prefer_adapter", s.prefer_adapter},
          {"prefer_baseline", s.prefer_baseline},
          {"ties", s.ties},
          {"rating_agreement", AgreementToJson(s.rating_agreement)},
          {"preference_agreement", AgreementToJson(s.preference_agreement)},
          {"win_rate", WinRateToJson(s.win_rate)},
          {"judgements", all}};
}

nlohmann::json ReviewRecordSection(const ReviewSample& sample, const ReviewSummary* summary) {
  return {{"sample", ReviewSampleToJson(sample)},
          {"summary", summary ? ReviewSummaryToJson(*summary) : nlohmann::json(nullptr)}};
}

}  // namespace qlorad::eval
