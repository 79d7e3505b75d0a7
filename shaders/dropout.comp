#version 450
// dropout: y (ACCUMULATE: +=) = keep(i)·x[i]·scale, keep(i) = murmur3(seed[0], salt, first + i) >> 8 >= threshold; DropoutBackward runs it on dy.
// bindings: 0 y [n], 1 x [n] (may be the same memory), 2 seed [1] (32-bit word: u32, i32 or f32 bits).
// grid: ceil(n / LOCAL_X) workgroups, folded into y past maxComputeWorkGroupCount[0].
#include "common.glsl"
#include "dropout.glsl"
LOCAL_SIZE_1D

layout(std430, binding = 0) buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer Seed { uint seed[]; };
// first is the global index of element 0 of this dispatch, so a split tensor hashes its whole-tensor indices.
layout(push_constant) uniform P { uint n; uint first; uint salt; uint threshold; float scale; } p;

void main() {
    uint i = GLOBAL_INDEX_1D;
    if (i >= p.n) return;
    // A select, not a multiply by the mask, so a dropped element is 0 even when x is not finite.
    float v = dropoutKeep(seed[0], p.salt, p.first + i, p.threshold) ? x[i] * p.scale : 0.0;
#ifdef ACCUMULATE
    y[i] += v;
#else
    y[i] = v;
#endif
}
