#version 450
// gelu_backward: dx = dy·gelu'(x), gelu'(x) = Φ(x) + x·φ(x), φ(x) = e^{−x²/2}/√(2π) (gelu.glsl); dx overwritten.
// bindings: 0 dx [n], 1 dy [n], 2 x [n] (dx may be the same memory as dy).
// grid: ceil(n / LOCAL_X) workgroups, folded into y past maxComputeWorkGroupCount[0].
#include "common.glsl"
LOCAL_SIZE_1D
#include "gelu.glsl"

layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint n; } p;

void main() {
    uint i = GLOBAL_INDEX_1D;
    if (i >= p.n) return;
    float v = x[i], gauss;
    float q = gelu_tail(v, gauss);
    dx[i] = dy[i] * ((v < 0.0 ? q : 1.0 - q) + v * (gauss * 0.398942292));
}
