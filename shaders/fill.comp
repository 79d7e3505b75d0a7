#version 450
// fill: y[i] = value for i in [0, n). 32-bit elements (f32 values, or any 32-bit pattern via bits).
// bindings: 0 y [n] (u32 words).  grid: ceil(n / local_size) groups, folded into y past 65535.
#include "common.glsl"
LOCAL_SIZE_1D
layout(std430, binding = 0) writeonly buffer Y { uint y[]; };
layout(push_constant) uniform P { uint n; uint bits; } p;
void main() {
    uint i = GLOBAL_INDEX_1D;
    if (i < p.n) y[i] = p.bits;
}
