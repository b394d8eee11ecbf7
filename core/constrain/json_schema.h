// JSON Schema -> regular language (regex_ast.h) of the JSON texts that validate
// against it, for constrained decoding (structured outputs).
//
// Supported subset (anything else is INVALID_ARGUMENT naming the keyword and the
// schema path, e.g. "response_format.json_schema.schema.properties.tags:
// keyword 'uniqueItems' is not supported"):
//  * type (a name or a list of names): object, array, string, integer, number,
//    boolean, null; enum; const; anyOf; allOf with one member; $ref to "#",
//    "#/$defs/NAME" or "#/definitions/NAME" (expanded at most 4 levels deep).
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
// space after ':' and ','. Integers have at most 15 digits and numbers have no
// exponent (every such value is exact in a double). A bounded number has a
// fraction only when the whole unit interval it lies in is within the bounds.
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
