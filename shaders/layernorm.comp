#version 450
// layernorm: y = (x − mean)·rstd·w + b per row, mean and biased variance over the last dim, rstd = 1/sqrt(var + eps) (spec §2.4); NO_AFFINE: w = 1, b = 0 (spec §2.3 step 7).
// bindings: 0 y [rows, dim], 1 mean [rows], 2 rstd [rows], 3 x [rows, dim], 4 w [dim], 5 b [dim] (4, 5 absent with NO_AFFINE).
// grid: one workgroup per row, folded into y past maxComputeWorkGroupCount[0].
// CPU (CPU drivers, dim a multiple of 4; vk/layernorm.go picks it): one subgroup per row, x, w and b read
// as 16-byte texels (3, 4, 5 as uimageBuffer: one vector load per lane on llvmpipe, where a lane-varying
// storage-buffer load is a scalar loop over the lanes), y written as vec4s, sums by a butterfly of
// subgroup shuffles instead of shared memory and barriers.
#ifdef CPU
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_shuffle : enable
#endif
#include "common.glsl"
LOCAL_SIZE_1D
#ifdef CPU
#include "lanes.glsl"

layout(std430, binding = 0) writeonly buffer Y4 { vec4 y4[]; };
layout(std430, binding = 1) writeonly buffer Mean { float mean_out[]; };
layout(std430, binding = 2) writeonly buffer Rstd { float rstd_out[]; };
layout(binding = 3, rgba32ui) uniform readonly uimageBuffer texX;
#ifndef NO_AFFINE
layout(binding = 4, rgba32ui) uniform readonly uimageBuffer texW;
layout(binding = 5, rgba32ui) uniform readonly uimageBuffer texB;
#endif
layout(push_constant) uniform P { uint rows; uint dim; float eps; } p;

#define texel(img, i) uintBitsToFloat(imageLoad(img, int(i)))

void main() {
    const uint rows = p.rows, dim = p.dim;  // push constants outside control flow (gemm.glsl's Epilogue)
    const float eps = p.eps;
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= rows) return;
    const uint l = gl_SubgroupInvocationID, d4 = dim / 4u, base = row * d4;
    vec4 s = vec4(0);
    for (uint j = l; j < d4; j += LOCAL_X) s += texel(texX, base + j);
    const float mean = laneSum((s.x + s.y) + (s.z + s.w)) / float(dim);
    vec4 q = vec4(0);
    for (uint j = l; j < d4; j += LOCAL_X) {
        vec4 d = texel(texX, base + j) - mean;
        q += d * d;
    }
    const float rstd = 1.0 / sqrt(laneSum((q.x + q.y) + (q.z + q.w)) / float(dim) + eps);
    if (l == 0u) {
        mean_out[row] = mean;
        rstd_out[row] = rstd;
    }
    for (uint j = l; j < d4; j += LOCAL_X) {
        vec4 xhat = (texel(texX, base + j) - mean) * rstd;
#ifdef NO_AFFINE
        y4[base + j] = xhat;
#else
        y4[base + j] = xhat * texel(texW, j) + texel(texB, j);
#endif
    }
}
#else
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
#endif
