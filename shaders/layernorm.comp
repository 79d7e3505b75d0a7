#version 450
// layernorm: y = (x − mean)·rstd·w + b per row, mean and biased variance over the last dim, rstd = 1/sqrt(var + eps) (spec §2.4); NO_AFFINE: w = 1, b = 0 (spec §2.3 step 7).
// bindings: 0 y [rows, dim], 1 mean [rows], 2 rstd [rows], 3 x [rows, dim], 4 w [dim], 5 b [dim] (4, 5 absent with NO_AFFINE).
// grid: one workgroup per row, folded into y past maxComputeWorkGroupCount[0].
#include "common.glsl"
LOCAL_SIZE_1D
#include "reduce.glsl"

layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) writeonly buffer Mean { float mean_out[]; };
layout(std430, binding = 2) writeonly buffer Rstd { float rstd_out[]; };
layout(std430, binding = 3) readonly buffer X { float x[]; };
#ifndef NO_AFFINE
layout(std430, binding = 4) readonly buffer W { float w[]; };
layout(std430, binding = 5) readonly buffer B { float b[]; };
#endif
layout(push_constant) uniform P { uint rows; uint dim; float eps; } p;

void main() {
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= p.rows) return; // uniform across the workgroup, so no barrier is skipped by part of it
    uint t = gl_LocalInvocationID.x;
    uint base = row * p.dim;

    // Two passes over the row (mean, then the mean of squared deviations) rather than E[x²] − E[x]², which
    // cancels catastrophically when |mean| ≫ std.
    float s = 0;
    for (uint j = t; j < p.dim; j += LOCAL_X) s += x[base + j];
    float mean = workgroup_sum(s) / float(p.dim);
    float q = 0;
    for (uint j = t; j < p.dim; j += LOCAL_X) {
        float d = x[base + j] - mean;
        q += d * d;
    }
    float rstd = 1.0 / sqrt(workgroup_sum(q) / float(p.dim) + p.eps);
    if (t == 0) {
        mean_out[row] = mean;
        rstd_out[row] = rstd;
    }
    for (uint j = t; j < p.dim; j += LOCAL_X) {
        float xhat = (x[base + j] - mean) * rstd;
#ifdef NO_AFFINE
        y[base + j] = xhat;
#else
        y[base + j] = xhat * w[j] + b[j];
#endif
    }
}
