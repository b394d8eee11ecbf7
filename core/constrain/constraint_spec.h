// What a request asks structured output to be (a JSON schema, any JSON object, a
// choice among strings, a regex): plain data for the service API and the front ends.
// Compiled by token_grammar.h.
#ifndef QLORAD_CORE_CONSTRAIN_CONSTRAINT_SPEC_H_
#define QLORAD_CORE_CONSTRAIN_CONSTRAINT_SPEC_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qlorad::constrain {

struct ConstraintSpec {
  enum class Kind { kNone, kJsonSchema, kJsonObject, kChoice, kRegex };
  Kind kind = Kind::kNone;
  std::string text;                  // the schema's JSON (kJsonSchema) or the pattern (kRegex)
  std::vector<std::string> choices;  // kChoice
  std::string field;                 // the request field, for errors ("response_format.json_schema.schema")

  bool active() const { return kind != Kind::kNone; }
  std::string CacheKey() const;
};

// A request's structured-output fields; at most one may be set.
struct GuidedFields {
  std::string json_schema, json_schema_field = "guided_json";
  bool json_object = false;
  std::string json_object_field = "guided_json_object";
  std::vector<std::string> choice;
  std::string choice_field = "guided_choice";
  std::string regex;
  std::string regex_field = "guided_regex";
};
// The constraint the fields ask for (kNone when none is set); INVALID_ARGUMENT naming
// the second field set (and the first) when more than one is set.
absl::StatusOr<ConstraintSpec> ConstraintFromFields(const GuidedFields& fields);

}  // namespace qlorad::constrain

#endif  // QLORAD_CORE_CONSTRAIN_CONSTRAINT_SPEC_H_
