#version 450
// add: y = a + b, elementwise f32.
// bindings: 0 y [n], 1 a [n], 2 b [n] (any of them may be the same memory).
// grid: ceil(n / LOCAL_X) workgroups, folded into y past maxComputeWorkGroupCount[0].
#include "common.glsl"
LOCAL_SIZE_1D

layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer A { float a[]; };
layout(std430, binding = 2) readonly buffer B { float b[]; };
layout(push_constant) uniform P { uint n; } p;

void main() {
    uint i = GLOBAL_INDEX_1D;
    if (i < p.n) y[i] = a[i] + b[i];
}
