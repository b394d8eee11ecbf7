#include "core/constrain/json_schema.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <map>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qlorad::constrain {
namespace {

using Json = nlohmann::ordered_json;
using Node = RegexNode;

constexpr int64_t kMaxMagnitude = 999999999999999;  // 15 digits
constexpr int kMaxRefDepth = 4;
constexpr int kMaxSignificantDigits = 15;  // exact round trip through a double
constexpr int kMaxSchemaDepth = 32;        // nested schemas (the compiler recurses per level)
constexpr int64_t kMaxRegexNodes = 2000000;  // copies made while compiling (arrays, optional members)

// The type a keyword implies when a schema names none.
const std::map<std::string, std::string>& ImpliedTypes() {
  static const std::map<std::string, std::string> kTypes = {
      {"properties", "object"},  {"required", "object"},  {"additionalProperties", "object"},
      {"items", "array"},        {"minItems", "array"},   {"maxItems", "array"},
      {"minLength", "string"},   {"maxLength", "string"}, {"pattern", "string"},
      {"format", "string"},      {"minimum", "number"},   {"maximum", "number"},
      {"exclusiveMinimum", "number"}, {"exclusiveMaximum", "number"}};
  return kTypes;
}

bool MatchesType(const Json& value, const std::string& type) {
  if (type == "integer") return value.is_number_integer() || (value.is_number_float() && std::floor(value.get<double>()) == value.get<double>());
  if (type == "number") return value.is_number();
  if (type == "string") return value.is_string();
  if (type == "boolean") return value.is_boolean();
  if (type == "null") return value.is_null();
  if (type == "array") return value.is_array();
  if (type == "object") return value.is_object();
  return false;
}

int64_t NodeCount(const RegexNode& node) {
  int64_t n = 1;
  for (const auto& child : node.children) n += NodeCount(child);
  return n;
}

const std::set<std::string>& Annotations() {
  static const std::set<std::string> kNames = {"title",   "description", "examples",   "default",  "$schema",
                                               "$id",     "$comment",    "deprecated", "readOnly", "writeOnly"};
  return kNames;
}
const std::set<std::string>& Supported() {
  static const std::set<std::string> kNames = {
      "type",    "enum",      "const",      "anyOf",     "allOf",     "$ref",          "$defs",
      "definitions", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
      "minLength", "maxLength", "pattern",  "format",    "minimum",   "maximum", "exclusiveMinimum",
      "exclusiveMaximum"};
  return kNames;
}

Node Lit(std::string_view text) { return Node::Literal(text); }
Node Seq(std::vector<Node> parts) { return Node::Concat(std::move(parts)); }
Node Digit() { return Node::Chars(CharSet::Of('0', '9')); }
Node Digits(int min, int max) { return Node::Repeat(Digit(), min, max); }
Node Separator() { return Seq({Lit(","), Node::Optional(Lit(" "))}); }
Node Colon() { return Seq({Lit(":"), Node::Optional(Lit(" "))}); }

// Characters a JSON string may hold unescaped.
CharSet PlainStringChars() { return CharSet::Any().Minus(CharSet{{{0, 0x1F}, {'"', '"'}, {'\\', '\\'}}}); }

Node StringChar() {
  return Node::Alternation({Node::Chars(PlainStringChars()),
                            Seq({Lit("\\"), Node::Chars(CharSet{{{'"', '"'}, {'/', '/'}, {'\\', '\\'}, {'b', 'b'},
                                                                 {'f', 'f'}, {'n', 'n'}, {'r', 'r'}, {'t', 't'}}})})});
}
Node Quoted(Node content) { return Seq({Lit("\""), std::move(content), Lit("\"")}); }
Node AnyString() { return Quoted(Node::Repeat(StringChar(), 0, -1)); }

// Equal-length decimal strings x <= y: every number between them, digit by digit.
Node SameLength(const std::string& x, const std::string& y) {
  if (x.empty()) return Node::Empty();
  if (x == y) return Lit(x);
  const size_t n = x.size() - 1;
  if (x[0] == y[0]) return Seq({Lit(x.substr(0, 1)), SameLength(x.substr(1), y.substr(1))});
  const std::string zeros(n, '0'), nines(n, '9');
  if (x.substr(1) == zeros && y.substr(1) == nines)
    return Seq({Node::Chars(CharSet::Of(x[0], y[0])), Digits(static_cast<int>(n), static_cast<int>(n))});
  std::vector<Node> options;
  options.push_back(Seq({Lit(x.substr(0, 1)), SameLength(x.substr(1), nines)}));
  if (x[0] + 1 <= y[0] - 1)
    options.push_back(Seq({Node::Chars(CharSet::Of(x[0] + 1, y[0] - 1)), Digits(static_cast<int>(n), static_cast<int>(n))}));
  options.push_back(Seq({Lit(y.substr(0, 1)), SameLength(zeros, y.substr(1))}));
  return Node::Alternation(std::move(options));
}

// Decimal integers in [lo, hi], 0 <= lo <= hi, without leading zeros; with
// `fraction`, each is followed by a fraction that ends in a non-zero digit (so the
// value lies strictly between two integers) and keeps the total at
// kMaxSignificantDigits digits, so the text parses to a double that cannot round
// onto the next integer.
Node NonNegativeRange(int64_t lo, int64_t hi, bool fraction = false) {
  std::vector<Node> options;
  int64_t low_of_length = 0, high_of_length = 9;
  for (int length = 1; low_of_length <= hi; ++length) {
    const int64_t a = std::max(lo, low_of_length), b = std::min(hi, high_of_length);
    const int fraction_digits = kMaxSignificantDigits - length;
    if (a <= b && (!fraction || fraction_digits >= 1)) {
      Node integer = SameLength(std::to_string(a), std::to_string(b));
      if (fraction)
        integer = Seq({std::move(integer), Lit("."), Digits(0, fraction_digits - 1), Node::Chars(CharSet::Of('1', '9'))});
      options.push_back(std::move(integer));
    }
    low_of_length = high_of_length + 1;
    high_of_length = high_of_length * 10 + 9;
  }
  return Node::Alternation(std::move(options));
}

// Integers in [lo, hi] (lo <= hi), as JSON writes them.
Node IntegerRange(int64_t lo, int64_t hi) {
  std::vector<Node> options;
  if (lo < 0) options.push_back(Seq({Lit("-"), NonNegativeRange(hi < 0 ? -hi : 1, -lo)}));
  if (hi >= 0) options.push_back(NonNegativeRange(std::max<int64_t>(lo, 0), hi));
  return Node::Alternation(std::move(options));
}

class Compiler {
 public:
  Compiler(const Json& root, std::string field) : root_(root), field_(std::move(field)) {}

  absl::StatusOr<Node> Compile(const Json& schema, const std::string& path, int ref_depth) {
    if (depth_ >= kMaxSchemaDepth) return Error(path, absl::StrCat("schemas nested deeper than ", kMaxSchemaDepth, " levels"));
    ++depth_;
    auto node = CompileSchema(schema, path, ref_depth);
    --depth_;
    return node;
  }

 private:
  absl::StatusOr<Node> CompileSchema(const Json& schema, const std::string& path, int ref_depth) {
    if (schema.is_boolean()) {
      if (schema.get<bool>()) return Any(kAnyJsonDepth);
      return Error(path, "the schema 'false' accepts nothing");
    }
    if (!schema.is_object()) return Error(path, "a schema must be an object or a boolean");
    for (const auto& [key, value] : schema.items()) {
      if (!Supported().count(key) && !Annotations().count(key))
        return Error(path, absl::StrCat("keyword '", key, "' is not supported (hint: see the structured-output subset in the README)"));
    }
    for (const char* combinator : {"$ref", "enum", "const", "anyOf", "allOf"}) {
      if (!schema.contains(combinator)) continue;
      QLORAD_RETURN_IF_ERROR(CheckSiblings(schema, path, combinator));
      if (combinator[0] == '$') return CompileRef(schema, path, ref_depth);
      if (combinator[0] == 'e') return CompileEnum(schema, schema["enum"], path + ".enum");
      if (combinator[0] == 'c') return CompileEnum(schema, Json::array({schema["const"]}), path + ".const");
      if (combinator[1] == 'n') return CompileAnyOf(schema["anyOf"], path + ".anyOf", ref_depth);
      const Json& all = schema["allOf"];
      if (!all.is_array() || all.size() != 1)
        return Error(path + ".allOf", "only an allOf with exactly one schema is supported (hint: merge the schemas)");
      return Compile(all[0], path + ".allOf[0]", ref_depth);
    }
    if (!schema.contains("type")) {
      std::set<std::string> implied;
      for (const auto& [key, value] : schema.items())
        if (ImpliedTypes().count(key)) implied.insert(ImpliedTypes().at(key));
      if (implied.empty()) return Any(kAnyJsonDepth);
      if (implied.size() > 1)
        return Error(path, "keywords of several types without 'type' (hint: name the type, or use anyOf)");
      return CompileType(*implied.begin(), schema, path, ref_depth);
    }
    const Json& type = schema["type"];
    if (type.is_string()) return CompileType(type.get<std::string>(), schema, path, ref_depth);
    if (!type.is_array() || type.empty()) return Error(path + ".type", "must be a type name or a non-empty list of them");
    std::vector<Node> options;
    for (const auto& t : type) {
      if (!t.is_string()) return Error(path + ".type", "must list type names");
      QLORAD_ASSIGN_OR_RETURN(Node n, CompileType(t.get<std::string>(), schema, path, ref_depth));
      options.push_back(std::move(n));
    }
    return Node::Alternation(std::move(options));
  }

  // $ref, enum, const, anyOf and allOf are compiled alone: other constraints beside
  // them would be dropped, so they are refused (enum/const may name their type).
  absl::Status CheckSiblings(const Json& schema, const std::string& path, const std::string& combinator) const {
    for (const auto& [key, value] : schema.items()) {
      if (key == combinator || Annotations().count(key) || key == "$defs" || key == "definitions") continue;
      if (key == "type" && (combinator == "enum" || combinator == "const")) continue;
      return Error(path, absl::StrCat("keyword '", key, "' beside '", combinator,
                                      "' is not supported (hint: move it into the referenced or listed schemas)"));
    }
    return absl::OkStatus();
  }

  // Charges the copies compilation makes against the budget (nested arrays and
  // optional members multiply them before the automaton's own state limit applies).
  absl::Status Charge(const Node& copied, const std::string& path) {
    nodes_left_ -= NodeCount(copied);
    if (nodes_left_ < 0)
      return Error(path, "the schema is too complex (hint: fewer nested arrays or optional properties)");
    return absl::OkStatus();
  }

  Node Any(int depth) {
    static const int64_t kSize = NodeCount(AnyValue(kAnyJsonDepth));
    nodes_left_ -= kSize;
    return AnyValue(depth);
  }

  absl::Status Error(const std::string& path, std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", std::string(what)));
  }

  absl::StatusOr<Node> CompileRef(const Json& schema, const std::string& path, int ref_depth) {
    if (!schema["$ref"].is_string()) return Error(path + ".$ref", "must be a string");
    const std::string ref = schema["$ref"].get<std::string>();
    if (ref_depth >= kMaxRefDepth)
      return Error(path + ".$ref", absl::StrCat("'", ref, "' is expanded more than ", kMaxRefDepth,
                                                " levels deep (recursive schemas are not supported)"));
    if (ref == "#") return Compile(root_, path + ".$ref", ref_depth + 1);
    for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
      if (!absl::StartsWith(ref, prefix)) continue;
      const std::string section = std::string(prefix).substr(2, std::string(prefix).size() - 3);
      const std::string name = ref.substr(std::string(prefix).size());
      if (root_.contains(section) && root_[section].is_object() && root_[section].contains(name))
        return Compile(root_[section][name], absl::StrCat(field_, ".", section, ".", name), ref_depth + 1);
      return Error(path + ".$ref", absl::StrCat("'", ref, "' names no definition in the schema"));
    }
    return Error(path + ".$ref", absl::StrCat("'", ref, "' is not a local reference (only #, #/$defs/... and #/definitions/...)"));
  }

  // The listed values that also match the schema's `type`, if it names one.
  absl::StatusOr<Node> CompileEnum(const Json& schema, const Json& values, const std::string& path) {
    if (!values.is_array() || values.empty()) return Error(path, "must be a non-empty array");
    std::vector<std::string> types;
    if (schema.contains("type")) {
      const Json& t = schema["type"];
      if (t.is_string()) types.push_back(t.get<std::string>());
      for (const auto& name : t.is_array() ? t : Json::array())
        if (name.is_string()) types.push_back(name.get<std::string>());
      if (types.empty()) return Error(path, "type must be a type name or a list of them");
    }
    std::vector<Node> options;
    for (const auto& v : values) {
      const bool typed = types.empty() || std::any_of(types.begin(), types.end(), [&](const std::string& t) { return MatchesType(v, t); });
      if (typed) options.push_back(Lit(v.dump()));
    }
    if (options.empty()) return Error(path, "no listed value has the schema's type");
    return Node::Alternation(std::move(options));
  }

  absl::StatusOr<Node> CompileAnyOf(const Json& list, const std::string& path, int ref_depth) {
    if (!list.is_array() || list.empty()) return Error(path, "must be a non-empty array of schemas");
    std::vector<Node> options;
    for (size_t i = 0; i < list.size(); ++i) {
      QLORAD_ASSIGN_OR_RETURN(Node n, Compile(list[i], absl::StrCat(path, "[", i, "]"), ref_depth));
      options.push_back(std::move(n));
    }
    return Node::Alternation(std::move(options));
  }

  absl::StatusOr<Node> CompileType(const std::string& type, const Json& schema, const std::string& path, int ref_depth) {
    if (type == "string") return CompileString(schema, path);
    if (type == "integer") return CompileInteger(schema, path);
    if (type == "number") return CompileNumber(schema, path);
    if (type == "boolean") return Node::Alternation({Lit("true"), Lit("false")});
    if (type == "null") return Lit("null");
    if (type == "array") return CompileArray(schema, path, ref_depth);
    if (type == "object") return CompileObject(schema, path, ref_depth);
    return Error(path + ".type", absl::StrCat("unknown type '", type, "'"));
  }

  absl::StatusOr<std::optional<int64_t>> Count(const Json& schema, const char* key, const std::string& path) {
    if (!schema.contains(key)) return std::optional<int64_t>();
    const Json& v = schema[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      return Error(absl::StrCat(path, ".", key), "must be a non-negative integer");
    return std::optional<int64_t>(v.get<int64_t>());
  }

  absl::StatusOr<Node> CompileString(const Json& schema, const std::string& path) {
    QLORAD_ASSIGN_OR_RETURN(auto min_length, Count(schema, "minLength", path));
    QLORAD_ASSIGN_OR_RETURN(auto max_length, Count(schema, "maxLength", path));
    if (schema.contains("pattern")) {
      if (min_length || max_length || schema.contains("format"))
        return Error(path, "pattern together with minLength/maxLength/format is not supported (hint: put the length in the pattern)");
      return CompilePattern(schema["pattern"], path + ".pattern");
    }
    if (schema.contains("format")) return CompileFormat(schema["format"], path + ".format");
    const int64_t lo = min_length.value_or(0), hi = max_length ? *max_length : -1;
    if (hi >= 0 && hi < lo) return Error(path + ".maxLength", "is below minLength");
    if (lo > 1000 || hi > 1000) return Error(path, "string lengths above 1000 characters are not supported");
    return Quoted(Node::Repeat(StringChar(), static_cast<int>(lo), static_cast<int>(hi)));
  }

  absl::StatusOr<Node> CompilePattern(const Json& pattern, const std::string& path) {
    if (!pattern.is_string()) return Error(path, "must be a string");
    const std::string text = pattern.get<std::string>();
    QLORAD_ASSIGN_OR_RETURN(Node parsed, ParseRegex(text, path));
    const CharSet plain = PlainStringChars();
    Node body = ExcludeChars(parsed, plain.Complement());
    const bool left = absl::StartsWith(text, "^");
    const bool right = absl::EndsWith(text, "$") && !absl::EndsWith(text, "\\$");
    std::vector<Node> parts;
    if (!left) parts.push_back(Node::Repeat(Node::Chars(plain), 0, -1));
    parts.push_back(std::move(body));
    if (!right) parts.push_back(Node::Repeat(Node::Chars(plain), 0, -1));
    return Quoted(Seq(std::move(parts)));
  }

  absl::StatusOr<Node> CompileFormat(const Json& format, const std::string& path) {
    if (!format.is_string()) return Error(path, "must be a string");
    static const char* kDate = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])";
    static const char* kTime = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
    const std::string name = format.get<std::string>();
    std::string regex;
    if (name == "date") regex = kDate;
    if (name == "time") regex = kTime;
    if (name == "date-time") regex = absl::StrCat(kDate, "T", kTime);
    if (name == "uuid") regex = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
    if (regex.empty())
      return Error(path, absl::StrCat("format '", name, "' is not supported (supported: date, time, date-time, uuid)"));
    QLORAD_ASSIGN_OR_RETURN(Node n, ParseRegex(regex, path));
    return Quoted(std::move(n));
  }

  // The bounds as [lo, hi] over the reals; absent ones are +-kMaxMagnitude.
  absl::Status Bounds(const Json& schema, const std::string& path, double* lo, double* hi, bool* lo_open, bool* hi_open) {
    *lo = -static_cast<double>(kMaxMagnitude);
    *hi = static_cast<double>(kMaxMagnitude);
    *lo_open = *hi_open = false;
    struct Bound {
      const char* key;
      bool is_min, open;
    };
    for (const Bound& bound : {Bound{"minimum", true, false}, Bound{"maximum", false, false},
                               Bound{"exclusiveMinimum", true, true}, Bound{"exclusiveMaximum", false, true}}) {
      if (!schema.contains(bound.key)) continue;
      if (!schema[bound.key].is_number()) return Error(absl::StrCat(path, ".", bound.key), "must be a number");
      const double v = schema[bound.key].get<double>();
      if (bound.is_min && v >= *lo) *lo = v, *lo_open = bound.open;
      if (!bound.is_min && v <= *hi) *hi = v, *hi_open = bound.open;
    }
    // Clamped both ways, so bounds past the representable magnitude leave an empty range.
    const double limit = static_cast<double>(kMaxMagnitude) + 1;
    *lo = std::clamp(*lo, -limit, limit);
    *hi = std::clamp(*hi, -limit, limit);
    return absl::OkStatus();
  }

  absl::StatusOr<Node> CompileInteger(const Json& schema, const std::string& path) {
    double lo, hi;
    bool lo_open, hi_open;
    QLORAD_RETURN_IF_ERROR(Bounds(schema, path, &lo, &hi, &lo_open, &hi_open));
    int64_t a = static_cast<int64_t>(std::ceil(lo)), b = static_cast<int64_t>(std::floor(hi));
    if (lo_open && static_cast<double>(a) == lo) ++a;
    if (hi_open && static_cast<double>(b) == hi) --b;
    if (a > b) return Error(path, "no integer lies within minimum/maximum");
    return IntegerRange(a, b);
  }

  absl::StatusOr<Node> CompileNumber(const Json& schema, const std::string& path) {
    double lo, hi;
    bool lo_open, hi_open;
    QLORAD_RETURN_IF_ERROR(Bounds(schema, path, &lo, &hi, &lo_open, &hi_open));
    std::vector<Node> options;
    int64_t a = static_cast<int64_t>(std::ceil(lo)), b = static_cast<int64_t>(std::floor(hi));
    if (lo_open && static_cast<double>(a) == lo) ++a;
    if (hi_open && static_cast<double>(b) == hi) --b;
    if (a <= b) options.push_back(IntegerRange(a, b));
    // i.f (f ending in a non-zero digit) lies strictly in (i, i+1) for i >= 0: allowed
    // when i >= lo and i + 1 <= hi (open or closed bounds alike).
    const int64_t p_lo = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(lo)));
    const int64_t p_hi = static_cast<int64_t>(std::floor(hi)) - 1;
    if (p_lo <= p_hi) options.push_back(NonNegativeRange(p_lo, p_hi, /*fraction=*/true));
    // -k.f lies strictly in (-k-1, -k) for k >= 0: allowed when -k-1 >= lo and -k <= hi.
    const int64_t n_lo = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(-hi)));
    const int64_t n_hi = static_cast<int64_t>(std::floor(-lo)) - 1;
    if (n_lo <= n_hi) options.push_back(Seq({Lit("-"), NonNegativeRange(n_lo, n_hi, /*fraction=*/true)}));
    if (options.empty()) return Error(path, "no number lies within minimum/maximum");
    return Node::Alternation(std::move(options));
  }

  absl::StatusOr<Node> CompileArray(const Json& schema, const std::string& path, int ref_depth) {
    Node item = Node::Empty();
    if (!schema.contains("items")) item = Any(kAnyJsonDepth - 1);
    if (schema.contains("items")) {
      QLORAD_ASSIGN_OR_RETURN(item, Compile(schema["items"], path + ".items", ref_depth));
    }
    QLORAD_ASSIGN_OR_RETURN(auto min_items, Count(schema, "minItems", path));
    QLORAD_ASSIGN_OR_RETURN(auto max_items, Count(schema, "maxItems", path));
    const int64_t lo = min_items.value_or(0), hi = max_items ? *max_items : -1;
    if (hi >= 0 && hi < lo) return Error(path + ".maxItems", "is below minItems");
    if (lo > 1000 || hi > 1000) return Error(path, "more than 1000 array items are not supported");
    QLORAD_RETURN_IF_ERROR(Charge(item, path));  // Sequence writes the item twice
    return Sequence(Lit("["), std::move(item), static_cast<int>(lo), static_cast<int>(hi), Lit("]"));
  }

  // open item (sep item){min-1, max-1} close, or open close when no item is required.
  static Node Sequence(Node open, Node item, int min, int max, Node close) {
    if (max == 0) return Seq({std::move(open), std::move(close)});
    Node rest = Node::Repeat(Seq({Separator(), item}), std::max(0, min - 1), max < 0 ? -1 : max - 1);
    Node items = Seq({std::move(item), std::move(rest)});
    if (min == 0) items = Node::Optional(std::move(items));
    return Seq({std::move(open), std::move(items), std::move(close)});
  }

  absl::StatusOr<Node> CompileObject(const Json& schema, const std::string& path, int ref_depth) {
    const bool has_properties = schema.contains("properties");
    if (has_properties && !schema["properties"].is_object()) return Error(path + ".properties", "must be an object");
    std::set<std::string> required;
    if (schema.contains("required")) {
      const Json& list = schema["required"];
      if (!list.is_array()) return Error(path + ".required", "must be an array of property names");
      for (const auto& name : list) {
        if (!name.is_string()) return Error(path + ".required", "must be an array of property names");
        if (!has_properties || !schema["properties"].contains(name.get<std::string>()))
          return Error(path + ".required", absl::StrCat("'", name.get<std::string>(), "' is not in properties"));
        required.insert(name.get<std::string>());
      }
    }
    if (!has_properties || schema["properties"].empty()) {
      const Json extra = schema.contains("additionalProperties") ? schema["additionalProperties"] : Json(true);
      if (extra.is_boolean() && !extra.get<bool>()) return Lit("{}");
      Node value = Node::Empty();
      if (extra.is_boolean()) value = Any(kAnyJsonDepth - 1);
      if (!extra.is_boolean()) {
        QLORAD_ASSIGN_OR_RETURN(value, Compile(extra, path + ".additionalProperties", ref_depth));
      }
      QLORAD_RETURN_IF_ERROR(Charge(value, path));
      return ObjectOf(std::move(value));
    }
    std::vector<std::pair<Node, bool>> members;  // "key": value, required
    for (const auto& [name, sub] : schema["properties"].items()) {
      QLORAD_ASSIGN_OR_RETURN(Node value, Compile(sub, absl::StrCat(path, ".properties.", name), ref_depth));
      members.push_back({Seq({Lit(Json(name).dump()), Colon(), std::move(value)}), required.count(name) > 0});
    }
    QLORAD_ASSIGN_OR_RETURN(Node body, Members(members, 0, true, path));
    return Seq({Lit("{"), std::move(body), Lit("}")});
  }

  // Members i.. in order, each optional one possibly left out; `first` = nothing
  // emitted yet (no separator before the next member).
  // Each call copies member i (charged against the budget).
  absl::StatusOr<Node> Members(const std::vector<std::pair<Node, bool>>& members, size_t i, bool first,
                               const std::string& path) {
    if (i == members.size()) return Node::Empty();
    const auto& [member, is_required] = members[i];
    QLORAD_RETURN_IF_ERROR(Charge(member, path));
    QLORAD_ASSIGN_OR_RETURN(Node rest, Members(members, i + 1, false, path));
    if (is_required) return Seq({first ? Node::Empty() : Separator(), member, std::move(rest)});
    if (!first) return Seq({Node::Optional(Seq({Separator(), member})), std::move(rest)});
    QLORAD_ASSIGN_OR_RETURN(Node without, Members(members, i + 1, true, path));
    return Node::Alternation({Seq({member, std::move(rest)}), std::move(without)});
  }

 public:
  static Node AnyValue(int depth) {
    std::vector<Node> options = {AnyString(), IntegerOrNumber(), Lit("true"), Lit("false"), Lit("null")};
    if (depth > 0) {
      options.push_back(Sequence(Lit("["), AnyValue(depth - 1), 0, -1, Lit("]")));
      options.push_back(AnyObject(depth - 1));
    }
    return Node::Alternation(std::move(options));
  }

  // Objects with any keys and values matching `value`.
  static Node ObjectOf(Node value) { return Sequence(Lit("{"), Seq({AnyString(), Colon(), std::move(value)}), 0, -1, Lit("}")); }
  // Any object whose values nest at most `depth` levels.
  static Node AnyObject(int depth) { return ObjectOf(AnyValue(depth)); }

 private:
  static Node IntegerOrNumber() {
    Node integer = Seq({Node::Optional(Lit("-")), Node::Alternation({Lit("0"), Seq({Node::Chars(CharSet::Of('1', '9')),
                                                                                    Digits(0, 14)})})});
    return Seq({std::move(integer), Node::Optional(Seq({Lit("."), Digits(1, kMaxSignificantDigits)}))});
  }

  const Json& root_;
  std::string field_;
  int depth_ = 0;
  int64_t nodes_left_ = kMaxRegexNodes;
};

}  // namespace

absl::StatusOr<RegexNode> JsonSchemaToRegex(std::string_view schema_json, const std::string& field) {
  bool too_deep = false;
  const Json::parser_callback_t limit_depth = [&too_deep](int depth, Json::parse_event_t, Json&) {
    too_deep = too_deep || depth > 4 * kMaxSchemaDepth;
    return !too_deep;
  };
  Json root = Json::parse(schema_json.begin(), schema_json.end(), limit_depth, /*allow_exceptions=*/false);
  if (too_deep) return absl::InvalidArgumentError(absl::StrCat(field, ": JSON nested too deeply"));
  if (root.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(field, ": is not valid JSON"));
  Compiler compiler(root, std::string(field));
  return compiler.Compile(root, std::string(field), 0);
}

RegexNode AnyJsonObject() { return Compiler::AnyObject(kAnyJsonDepth - 1); }

}  // namespace qlorad::constrain
