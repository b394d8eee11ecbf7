// Fuzzes structured-output compilation: a JSON schema (or, with a leading 'R', a
// regex) compiled to the byte-level DFA that constrains decoding, under a state
// budget. An accepted DFA is walked over the input's bytes without leaving its table.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/constrain/byte_automaton.h"
#include "core/constrain/json_schema.h"
#include "core/constrain/regex_ast.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto regex = data[0] == 'R' ? qlorad::constrain::ParseRegex(text, "guided_regex")
                              : qlorad::constrain::JsonSchemaToRegex(text, "response_format.json_schema.schema");
  if (!regex.ok()) return 0;
  auto dfa = qlorad::constrain::ByteDfa::Build(*regex, "guided", /*max_states=*/4000);
  if (!dfa.ok()) return 0;
  int32_t state = dfa->start();
  for (char c : text) {
    state = dfa->Next(state, static_cast<uint8_t>(c));
    if (state == qlorad::constrain::ByteDfa::kDead) break;
    if (state < 0 || state >= dfa->size()) std::abort();
  }
  return 0;
}
