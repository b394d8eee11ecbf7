// Code books and decision thresholds of bitsandbytes' 4-bit (NF4, FP4) and 8-bit
// dynamic quantization. Values are facts of the format (see design.md §2); the
// reference tests/reference/nf4_reference.py recomputes them independently and the
// kernel tests compare both bit for bit.
#ifndef QLORAD_KERNELS_QUANT_TABLES_H_
#define QLORAD_KERNELS_QUANT_TABLES_H_

#include <cstdint>

namespace qlorad::kernels {

// NF4 value of each 4-bit index (0..15), ascending from -1 to 1.
extern const float kNf4Code[16];
// The 15 rounding thresholds between neighbouring NF4 codes, ascending:
// index = number of thresholds t with x > t (an exact tie goes to the lower code,
// NaN to index 0), exactly like bitsandbytes' dQuantizeNF4 decision tree.
extern const float kNf4Thresholds[15];

// FP4 value of each 4-bit code (bit 3 = sign, bits 0..2 = magnitude index).
extern const float kFp4Code[16];
// The 7 thresholds on |x| between FP4 magnitudes (ascending) and the 3-bit code of
// each magnitude rank 0..7. code = rank_to_code[#{t : |x| > t}] | (x < 0 ? 8 : 0).
extern const float kFp4Thresholds[7];
extern const int32_t kFp4RankToCode[8];

// bitsandbytes' create_dynamic_map(signed=True): 256 ascending values, min
// -0.99296875, [127] = 0, max 1.0. Used for the double quantization of absmax.
extern const float kDynamicMapSigned[256];

}  // namespace qlorad::kernels

#endif  // QLORAD_KERNELS_QUANT_TABLES_H_
