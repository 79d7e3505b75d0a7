#version 450
// adamw8bit: AdamW step (spec §10) with m, v as block-wise 8-bit dynamic codes: dequantize, update, requantize.
// bindings: 0 p f32[n], 1 mq, 2 vq u32[ceil(n/4)] (4 codes a word, little-endian), 3 m_scale, 4 v_scale f32[ceil(n/BLOCK)], 5 g f32[n], 6 hyper f32[9], 7 qmap f32[512].
// grid: one group of LOCAL_X invocations (4 codes each) per block of BLOCK = 4·LOCAL_X values, folded into y.
#include "common.glsl"
#define HYPER_BINDING 6
#include "adamw.glsl"
LOCAL_SIZE_1D
layout(std430, binding = 0) buffer P { float p[]; };
layout(std430, binding = 1) buffer MQ { uint mq[]; };
layout(std430, binding = 2) buffer VQ { uint vq[]; };
layout(std430, binding = 3) buffer MS { float m_scale[]; };
layout(std430, binding = 4) buffer VS { float v_scale[]; };
layout(std430, binding = 5) readonly buffer G { float g[]; };
layout(std430, binding = 7) readonly buffer Q { float qmap[]; };
layout(push_constant) uniform Push { uint n; uint decay; } pc;

// code[0:256] is the signed map (m), code[256:512] the unsigned map (v), both sorted ascending.
shared float code[512];
shared float red_m[LOCAL_X];
shared float red_v[LOCAL_X];

// quantize returns the nearest code of map base (0 or 256) to x, the rule of ref.QuantizeNearest: the
// largest lo with code[lo] <= x by an 8-step binary search, then lo+1 if x lies above their midpoint.
uint quantize(uint base, float x) {
    uint lo = 0u;
    [[unroll]] for (uint stride = 128u; stride > 0u; stride >>= 1u) {
        if (lo + stride < 256u && code[base + lo + stride] <= x) lo += stride;
    }
    if (lo < 255u) {
        precise float mid = (code[base + lo] + code[base + lo + 1u]) * 0.5;
        if (x > mid) lo += 1u;
    }
    return lo;
}

void main() {
    const uint BLOCK = 4u * LOCAL_X;
    uint block = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (h.skip != 0.0 || block >= (pc.n + BLOCK - 1u) / BLOCK) return; // uniform over the group
    uint t = gl_LocalInvocationID.x;
    for (uint i = t; i < 512u; i += LOCAL_X) code[i] = qmap[i];
    barrier();

    uint w = block * LOCAL_X + t; // this invocation's word: elements 4w .. 4w+3
    bool inside = 4u * w < pc.n;
    uint mw = inside ? mq[w] : 0u, vw = inside ? vq[w] : 0u;
    float ms = m_scale[block], vs = v_scale[block];
    float mv[4], vv[4];
    float amax_m = 0.0, amax_v = 0.0;
    [[unroll]] for (uint k = 0u; k < 4u; k++) {
        uint i = 4u * w + k;
        mv[k] = 0.0;
        vv[k] = 0.0;
        if (i < pc.n) {
            float pi = p[i];
            mv[k] = code[bitfieldExtract(mw, int(8u * k), 8)] * ms;
            vv[k] = code[256u + bitfieldExtract(vw, int(8u * k), 8)] * vs;
            adam_update(pi, mv[k], vv[k], g[i] * h.grad_scale, pc.decay != 0u);
            p[i] = pi;
            amax_m = max(amax_m, abs(mv[k]));
            amax_v = max(amax_v, abs(vv[k]));
        }
    }

    red_m[t] = amax_m;
    red_v[t] = amax_v;
    barrier();
    for (uint s = LOCAL_X / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            red_m[t] = max(red_m[t], red_m[t + s]);
            red_v[t] = max(red_v[t], red_v[t + s]);
        }
        barrier();
    }
    amax_m = red_m[0];
    amax_v = red_v[0];
    if (t == 0u) { // every invocation read the old scales before the first barrier
        m_scale[block] = amax_m;
        v_scale[block] = amax_v;
    }
    if (!inside) return;
    [[unroll]] for (uint k = 0u; k < 4u; k++) {
        if (4u * w + k < pc.n) { // bytes past n (the last word's tail) keep their old value
            float xm = amax_m > 0.0 ? mv[k] / amax_m : 0.0;
            float xv = amax_v > 0.0 ? vv[k] / amax_v : 0.0;
            mw = bitfieldInsert(mw, quantize(0u, xm), int(8u * k), 8);
            vw = bitfieldInsert(vw, quantize(256u, xv), int(8u * k), 8);
        }
    }
    mq[w] = mw;
    vq[w] = vw;
}
