#include "core/constrain/constraint_spec.h"

#include "absl/strings/str_cat.h"

namespace qlorad::constrain {

absl::StatusOr<ConstraintSpec> ConstraintFromFields(const GuidedFields& f) {
  std::vector<std::string> set;
  ConstraintSpec spec;
  if (!f.json_schema.empty()) set.push_back(f.json_schema_field), spec = {ConstraintSpec::Kind::kJsonSchema, f.json_schema, {}, f.json_schema_field};
  if (f.json_object) set.push_back(f.json_object_field), spec = {ConstraintSpec::Kind::kJsonObject, "", {}, f.json_object_field};
  if (!f.choice.empty()) set.push_back(f.choice_field), spec = {ConstraintSpec::Kind::kChoice, "", f.choice, f.choice_field};
  if (!f.regex.empty()) set.push_back(f.regex_field), spec = {ConstraintSpec::Kind::kRegex, f.regex, {}, f.regex_field};
  if (set.size() > 1)
    return absl::InvalidArgumentError(absl::StrCat(set[1], ": conflicts with ", set[0],
                                                   " (set at most one structured-output constraint)"));
  return spec;
}

std::string ConstraintSpec::CacheKey() const {
  // Length-prefixed parts: no choice or pattern can make two constraints collide.
  std::string key = absl::StrCat(static_cast<int>(kind), ":", text.size(), ":", text);
  for (const auto& choice : choices) absl::StrAppend(&key, ":", choice.size(), ":", choice);
  return key;
}

}  // namespace qlorad::constrain
