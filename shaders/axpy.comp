#version 450
// axpy: y += alpha·x, elementwise f32.
// bindings: 0 y [n], 1 x [n] (may be the same memory).
// grid: ceil(n / LOCAL_X) workgroups, folded into y past maxComputeWorkGroupCount[0].
#include "common.glsl"
LOCAL_SIZE_1D

layout(std430, binding = 0) buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint n; float alpha; } p;

void main() {
    uint i = GLOBAL_INDEX_1D;
    if (i < p.n) y[i] += p.alpha * x[i];
}
