#version 450
// gelu: y = x·Φ(x) = 0.5·x·(1 + erf(x/√2)), the exact (erf) GELU of spec §2.1, elementwise (gelu.glsl).
// bindings: 0 y [n], 1 x [n] (may be the same memory).
// grid: ceil(n / LOCAL_X) workgroups, folded into y past maxComputeWorkGroupCount[0].
#include "common.glsl"
LOCAL_SIZE_1D
#include "gelu.glsl"

layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint n; } p;

void main() {
    uint i = GLOBAL_INDEX_1D;
    if (i >= p.n) return;
    float v = x[i], gauss;
    float q = gelu_tail(v, gauss);
    y[i] = v * (v < 0.0 ? q : 1.0 - q);
}
