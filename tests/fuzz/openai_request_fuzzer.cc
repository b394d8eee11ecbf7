// Fuzzes the OpenAI-compatible front end's request handling: the body of
// /v1/completions and /v1/chat/completions (messages, sampling fields, stop,
// response_format / structured-output fields, logprobs, stream options), as the
// HTTP handler passes it. Accepted requests must have sane limits.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/daemon/openai_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto request = qlorad::server::ParseOpenAiRequest(body, /*chat=*/(data[0] & 1) != 0, "qlorad-base");
  if (!request.ok()) return 0;
  if (request->logprobs < -1) std::abort();
  return 0;
}
