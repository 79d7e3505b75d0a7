#version 450
// layernorm_backward: dx (ACCUMULATE: +=) = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·w (NO_AFFINE: g = dy), x̂ = (x − mean)·rstd, means over the row.
// bindings: 0 dx [rows, dim], 1 dy [rows, dim], 2 x [rows, dim], 3 mean [rows], 4 rstd [rows], 5 w [dim] (absent with NO_AFFINE).
// grid: one workgroup per row, folded into y past maxComputeWorkGroupCount[0].
// CPU (as layernorm.comp's): one subgroup per row, dy, x and w read as texels (1, 2, 5), dx as vec4s.
#ifdef CPU
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_shuffle : enable
#endif
#include "common.glsl"
LOCAL_SIZE_1D
#ifdef CPU
#include "lanes.glsl"

layout(std430, binding = 0) buffer DX4 { vec4 dx4[]; };
layout(binding = 1, rgba32ui) uniform readonly uimageBuffer texDY;
layout(binding = 2, rgba32ui) uniform readonly uimageBuffer texX;
layout(std430, binding = 3) readonly buffer Mean { float mean_in[]; };
layout(std430, binding = 4) readonly buffer Rstd { float rstd_in[]; };
#ifndef NO_AFFINE
layout(binding = 5, rgba32ui) uniform readonly uimageBuffer texW;
#endif
layout(push_constant) uniform P { uint rows; uint dim; } p;

#define texel(img, i) uintBitsToFloat(imageLoad(img, int(i)))

// g4 is g = dy·w (NO_AFFINE: dy) at texel j of the row starting at texel base.
vec4 g4(uint base, uint j) {
#ifdef NO_AFFINE
    return texel(texDY, base + j);
#else
    return texel(texDY, base + j) * texel(texW, j);
#endif
}

void main() {
    const uint rows = p.rows, dim = p.dim;  // push constants outside control flow
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= rows) return;
    const uint l = gl_SubgroupInvocationID, d4 = dim / 4u, base = row * d4;
    const float mean = mean_in[row], rstd = rstd_in[row];
    vec4 sg = vec4(0), sgx = vec4(0);  // Σ g, Σ g·x̂
    for (uint j = l; j < d4; j += LOCAL_X) {
        vec4 g = g4(base, j);
        sg += g;
        sgx += g * ((texel(texX, base + j) - mean) * rstd);
    }
    const float mg = laneSum((sg.x + sg.y) + (sg.z + sg.w)) / float(dim);
    const float mgx = laneSum((sgx.x + sgx.y) + (sgx.z + sgx.w)) / float(dim);
    for (uint j = l; j < d4; j += LOCAL_X) {
        vec4 xhat = (texel(texX, base + j) - mean) * rstd;
        vec4 d = rstd * (g4(base, j) - mg - xhat * mgx);
#ifdef ACCUMULATE
        dx4[base + j] += d;
#else
        dx4[base + j] = d;
#endif
    }
}
#else
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
#endif
