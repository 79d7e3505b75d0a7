#version 450
// layernorm_backward: dx (ACCUMULATE: +=) = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·w (NO_AFFINE: g = dy), x̂ = (x − mean)·rstd, means over the row.
// bindings: 0 dx [rows, dim], 1 dy [rows, dim], 2 x [rows, dim], 3 mean [rows], 4 rstd [rows], 5 w [dim] (absent with NO_AFFINE).
// grid: one workgroup per row, folded into y past maxComputeWorkGroupCount[0].
#include "common.glsl"
LOCAL_SIZE_1D
#include "reduce.glsl"

layout(std430, binding = 0) buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 3) readonly buffer Mean { float mean_in[]; };
layout(std430, binding = 4) readonly buffer Rstd { float rstd_in[]; };
#ifndef NO_AFFINE
layout(std430, binding = 5) readonly buffer W { float w[]; };
#endif
layout(push_constant) uniform P { uint rows; uint dim; } p;

void main() {
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= p.rows) return; // uniform across the workgroup
    uint t = gl_LocalInvocationID.x;
    uint base = row * p.dim;
    float mean = mean_in[row], rstd = rstd_in[row];

    vec2 s = vec2(0); // (Σ g, Σ g·x̂)
    for (uint j = t; j < p.dim; j += LOCAL_X) {
#ifdef NO_AFFINE
        float g = dy[base + j];
#else
        float g = dy[base + j] * w[j];
#endif
        s += vec2(g, g * ((x[base + j] - mean) * rstd));
    }
    vec2 m = workgroup_sum2(s) / float(p.dim);
    for (uint j = t; j < p.dim; j += LOCAL_X) {
#ifdef NO_AFFINE
        float g = dy[base + j];
#else
        float g = dy[base + j] * w[j];
#endif
        float xhat = (x[base + j] - mean) * rstd;
        float d = rstd * (g - m.x - xhat * m.y);
#ifdef ACCUMULATE
        dx[base + j] += d;
#else
        dx[base + j] = d;
#endif
    }
}
