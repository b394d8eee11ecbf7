// The generation-length defaults every layer uses (engine, service, daemon flags and
// request mapping). Header-only and torch-free.
#ifndef QLORAD_CORE_SERVE_GENERATION_LIMITS_H_
#define QLORAD_CORE_SERVE_GENERATION_LIMITS_H_

#include <cstdint>

namespace qlorad::serve {

// max_new_tokens of a request that leaves it unset.
inline constexpr int64_t kDefaultMaxNewTokens = 64;
// The engine-wide cap on max_new_tokens (qlorad --max-new-tokens).
inline constexpr int64_t kDefaultMaxNewTokensLimit = 512;

}  // namespace qlorad::serve

#endif  // QLORAD_CORE_SERVE_GENERATION_LIMITS_H_
