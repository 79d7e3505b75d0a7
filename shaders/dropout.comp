#version 450
// dropout: y (ACCUMULATE: +=) = keep(i)·x[i]·scale, keep(i) = murmur3(seed[0], salt, first + i) >> 8 >= threshold; DropoutBackward runs it on dy.
// bindings: 0 y [n], 1 x [n] (may be the same memory), 2 seed [1] (32-bit word: u32, i32 or f32 bits).
// grid: ceil(n / LOCAL_X) workgroups, folded into y past maxComputeWorkGroupCount[0].
#include "common.glsl"
LOCAL_SIZE_1D

layout(std430, binding = 0) buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer Seed { uint seed[]; };
// first is the global index of element 0 of this dispatch, so a split tensor hashes its whole-tensor indices.
layout(push_constant) uniform P { uint n; uint first; uint salt; uint threshold; float scale; } p;

// murmur3Words step and finalizer: MurmurHash3_x86_32 of the 12-byte key (seed, salt, index), hash seed 0,
// exactly as ref.DropoutHash.
uint murmurStep(uint h, uint k) {
    k *= 0xcc9e2d51u;
    k = (k << 15) | (k >> 17);
    k *= 0x1b873593u;
    h ^= k;
    h = (h << 13) | (h >> 19);
    return h * 5u + 0xe6546b64u;
}

uint murmurFinish(uint h) {
    h ^= 12u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

void main() {
    uint i = GLOBAL_INDEX_1D;
    if (i >= p.n) return;
    uint h = murmurFinish(murmurStep(murmurStep(murmurStep(0u, seed[0]), p.salt), p.first + i));
    // A select, not a multiply by the mask, so a dropped element is 0 even when x is not finite.
    float v = (h >> 8) >= p.threshold ? x[i] * p.scale : 0.0;
#ifdef ACCUMULATE
    y[i] += v;
#else
    y[i] = v;
#endif
}
