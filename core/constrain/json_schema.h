// JSON Schema -> regular language (regex_ast.h) of the JSON texts that validate
// against it, for constrained decoding (structured outputs).
//
// Supported subset (anything else is INVALID_ARGUMENT naming the keyword and the
// schema path, e.g. "response_format.json_schema.schema.properties.tags:
// keyword 'uniqueItems' is not supported"):
//  * type (a name or a list of names): object, array, string, integer, number,
//    boolean, null (without one, the type the keywords imply; keywords of several
//    types are refused); enum and const (values not of `type` are dropped); anyOf;
//    allOf with one member; $ref to "#", "#/$defs/NAME" or "#/definitions/NAME"
//    (expanded at most 4 levels deep). Constraints beside $ref/enum/const/anyOf/allOf
//    are refused rather than dropped.
//  * object: properties (emitted in the schema's order), required (the others
//    may be omitted), additionalProperties (false, true or a schema; extra keys
//    are generated only for an object without properties).
//  * array: items, minItems, maxItems.
//  * string: minLength, maxLength (characters), pattern (ECMA-style, searched as
//    JSON Schema says, so unanchored patterns allow text around the match;
//    characters that JSON would escape are excluded from pattern matches),
//    format date | time | date-time | uuid.
//  * integer/number: minimum, maximum, exclusiveMinimum, exclusiveMaximum.
//  * annotations are ignored: title, description, examples, default, $schema,
//    $id, $comment, deprecated, readOnly, writeOnly.
// The generated text is compact JSON: no whitespace except an optional single
// space after ':' and ','. Numbers have at most 15 significant digits and no
// exponent, so the text parses to a double without rounding across a bound. A
// bounded number has a fraction (ending in a non-zero digit) only when the whole
// unit interval it lies in is within the bounds. Schemas nest at most 32 levels,
// and compilation has a size budget (nested arrays and optional members copy).
// A schema without a type (or {}) and json_object mode accept any JSON value
// nested at most kAnyJsonDepth levels.
#ifndef QLORAD_CORE_CONSTRAIN_JSON_SCHEMA_H_
#define QLORAD_CORE_CONSTRAIN_JSON_SCHEMA_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "core/constrain/regex_ast.h"

namespace qlorad::constrain {

inline constexpr int kAnyJsonDepth = 3;

// `schema_json` is the schema's JSON text; `field` prefixes error paths.
absl::StatusOr<RegexNode> JsonSchemaToRegex(std::string_view schema_json, const std::string& field);

// Any JSON object (json_object mode), values nested at most kAnyJsonDepth levels.
RegexNode AnyJsonObject();

}  // namespace qlorad::constrain

#endif  // QLORAD_CORE_CONSTRAIN_JSON_SCHEMA_H_
