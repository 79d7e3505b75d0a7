#version 450
// convert: y = x converted between f32, f16 and bf16 (SRC_*, DST_* defines), on the bits: round to nearest even, f16 saturating at ±65504 (as vk.F32ToF16), NaN stays NaN, inf stays inf.
// bindings: 0 y [n], 1 x [n] (f32 as u32 words, f16 and bf16 as uint16_t: needs storageBuffer16BitAccess).
// grid: ceil(n / LOCAL_X) workgroups, folded into y past maxComputeWorkGroupCount[0].
#extension GL_EXT_shader_16bit_storage : require
#include "common.glsl"
LOCAL_SIZE_1D

#if defined(SRC_F32)
layout(std430, binding = 1) readonly buffer X { uint x[]; };
#else
layout(std430, binding = 1) readonly buffer X { uint16_t x[]; };
#endif
#if defined(DST_F32)
layout(std430, binding = 0) writeonly buffer Y { uint y[]; };
#else
layout(std430, binding = 0) writeonly buffer Y { uint16_t y[]; };
#endif
layout(push_constant) uniform P { uint n; } p;

// Integer arithmetic throughout: float conversions would flush denormals and round by the device's mode.

uint f16_to_f32(uint h) {
    uint sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0u) {
        if (m == 0u) return sign;
        int msb = findMSB(m); // subnormal m·2^-24 = 2^(msb−24)·1.f
        return sign | (uint(msb + 103) << 23) | ((m << (23 - msb)) & 0x7fffffu);
    }
    if (e == 31u) return sign | 0x7f800000u | (m << 13);
    return sign | ((e + 112u) << 23) | (m << 13);
}

uint f32_to_f16(uint b) {
    uint sign = (b >> 16) & 0x8000u, a = b & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;  // NaN
    if (a == 0x7f800000u) return sign | 0x7c00u; // inf
    if (a > 0x477fe000u) return sign | 0x7bffu;  // above 65504: saturate
    if (a < 0x33000001u) return sign;            // at most 2^-25: rounds to ±0
    int e = int(a >> 23) - 127;
    uint m = (a & 0x7fffffu) | 0x800000u;
    uint r, rem, halfway;
    if (e < -14) { // subnormal half
        uint shift = uint(-e - 1); // 14..24
        r = m >> shift;
        rem = m & ((1u << shift) - 1u);
        halfway = 1u << (shift - 1u);
    } else {
        r = (uint(e + 15) << 10) | ((m >> 13) & 0x3ffu);
        rem = m & 0x1fffu;
        halfway = 0x1000u;
    }
    if (rem > halfway || (rem == halfway && (r & 1u) == 1u)) r++;
    return sign | r;
}

uint f32_to_bf16(uint b) {
    if ((b & 0x7fffffffu) > 0x7f800000u) return (b >> 16) | 0x40u; // NaN stays a (quiet) NaN
    return (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
}

void main() {
    uint i = GLOBAL_INDEX_1D;
    if (i >= p.n) return;
#if defined(SRC_F32)
    uint f = x[i];
#elif defined(SRC_F16)
    uint f = f16_to_f32(uint(x[i]));
#elif defined(SRC_BF16)
    uint f = uint(x[i]) << 16;
#else
#error define SRC_F32, SRC_F16 or SRC_BF16
#endif
#if defined(DST_F32)
    y[i] = f;
#elif defined(DST_F16)
#if defined(SRC_F16)
    y[i] = x[i]; // the round trip through f32 is exact, except that it would quiet a signalling NaN
#else
    y[i] = uint16_t(f32_to_f16(f));
#endif
#elif defined(DST_BF16)
#if defined(SRC_BF16)
    y[i] = x[i];
#else
    y[i] = uint16_t(f32_to_bf16(f));
#endif
#else
#error define DST_F32, DST_F16 or DST_BF16
#endif
}
