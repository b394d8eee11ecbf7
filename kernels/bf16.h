// bfloat16 <-> float conversions matching torch (round to nearest even; NaN stays NaN).
#ifndef QLORAD_KERNELS_BF16_H_
#define QLORAD_KERNELS_BF16_H_

#include <cstdint>
#include <cstring>

namespace qlorad::kernels {

inline float Bf16ToFloat(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

inline uint16_t FloatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace qlorad::kernels

#endif  // QLORAD_KERNELS_BF16_H_
