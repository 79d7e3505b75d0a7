#version 450
// attention_cached: o_i = Σ_j softmax_j(S_ij)·v_j, S_ij = scale·q_i·k_j + M_ij for the NQ new tokens of a batch element at global positions NC + i, over the keys of its NC cached tokens and of the new tokens (spec §2.5, §3; planning §3: a K/V-cached rollout step).
// bindings: 0 qkv [B·NQ, 3·H·DH] (q|k|v of the new tokens), 1 kv [B·CAP, 2·H·DH] (k|v of the cached tokens, rows 0..NC−1 of each element), 2 o [B·NQ, H·DH] (f32 windows, offsets in push constants).
// grid: (ceil(NQ / (WG·R)), H, B) workgroups of WG invocations, each R query rows; key tiles of BC rows in shared memory.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;  // invocations per workgroup
layout(constant_id = 1) const uint R = 1;    // query rows per invocation: q0 + tid + r·WG
layout(constant_id = 2) const uint BC = 32;  // keys per shared-memory tile
layout(constant_id = 3) const uint DH = 64;  // head dim

// Push constants: mirror of attnCachedPush in vk/attentioncached.go.
layout(push_constant) uniform P {
    uint nq;      // new tokens per batch element
    uint nc;      // cached tokens per batch element: global positions 0..nc−1
    uint cap;     // rows of kv per batch element
    uint heads;
    uint frame;   // block-causal frame size (spec §3); nc + nq for full attention
    float scale;  // softmax scale
    uint qkvOff;  // element offsets of batch element 0 in each bound window
    uint kvOff;
    uint oOff;
} p;

layout(std430, binding = 0) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 0) readonly buffer QKV4 { vec4 qkv4[]; };
layout(std430, binding = 1) readonly buffer KV { float kv[]; };
layout(std430, binding = 1) readonly buffer KV4 { vec4 kv4[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(std430, binding = 2) writeonly buffer O4 { vec4 o4[]; };

const uint D4 = (DH + 3u) / 4u;
const bool VEC4 = DH % 4u == 0u;
const float LOG2E = 1.4426950408889634;

// Elements d..d+3 of the head row starting at element at (vec4 loads when DH % 4 == 0; the tail past DH
// reads as 0): one vec4 load costs a quarter of four scalar ones on CPU drivers.
vec4 loadQKV(uint at, uint d) {
    if (VEC4) return qkv4[(at + d) / 4u];
    vec4 v = vec4(0.0);
    for (uint c = 0u; c < 4u; ++c) if (d + c < DH) v[c] = qkv[at + d + c];
    return v;
}
vec4 loadKV(uint at, uint d) {
    if (VEC4) return kv4[(at + d) / 4u];
    vec4 v = vec4(0.0);
    for (uint c = 0u; c < 4u; ++c) if (d + c < DH) v[c] = kv[at + d + c];
    return v;
}
void storeO(uint at, uint d, vec4 v) {
    if (VEC4) { o4[(at + d) / 4u] = v; return; }
    for (uint c = 0u; c < 4u; ++c) if (d + c < DH) o[at + d + c] = v[c];
}

// Head h of part (0 q, 1 k, 2 v) of new token i; head h of part (0 k, 1 v) of cached token j; output row.
uint qkvAt(uint b, uint i, uint part, uint h) { return p.qkvOff + ((b * p.nq + i) * 3u + part) * p.heads * DH + h * DH; }
uint kvAt(uint b, uint j, uint part, uint h) { return p.kvOff + ((b * p.cap + j) * 2u + part) * p.heads * DH + h * DH; }
uint outAt(uint b, uint i, uint h) { return p.oOff + (b * p.nq + i) * p.heads * DH + h * DH; }

// One past the last key (global position) that the token at global position g may see (spec §3).
uint frameEnd(uint g) { return min(p.nc + p.nq, (g / p.frame + 1u) * p.frame); }

shared vec4 Ks[BC * D4];
shared vec4 Vs[BC * D4];
shared float Ss[BC * R * WG];  // scores of the current tile, [key][row]

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint q0 = gl_WorkGroupID.x * WG * R, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;

    vec4 q[R][D4], acc[R][D4];
    float m[R], l[R];
    uint rowEnd[R];
    uint jMax = 0u;
    [[unroll]] for (uint r = 0; r < R; ++r) {
        uint i = q0 + r * WG + tid;
        bool live = i < p.nq;
        [[unroll]] for (uint d = 0; d < D4; ++d) {
            q[r][d] = live ? loadQKV(qkvAt(b, i, 0u, h), 4u * d) * (p.scale * LOG2E) : vec4(0.0);
            acc[r][d] = vec4(0.0);
        }
        m[r] = -1.0 / 0.0;
        l[r] = 0.0;
        rowEnd[r] = live ? frameEnd(p.nc + i) : 0u;
        jMax = max(jMax, rowEnd[r]);
    }
    // Keys past the last frame any row of this block sees are skipped, not masked.
    uint kEnd = frameEnd(p.nc + min(q0 + WG * R, p.nq) - 1u);

    for (uint k0 = 0; k0 < kEnd; k0 += BC) {
        barrier();
        for (uint e = tid; e < BC * D4; e += WG) {
            uint j = k0 + e / D4, d = 4u * (e % D4);
            vec4 kk = vec4(0.0), vv = vec4(0.0);
            if (j < p.nc) {
                kk = loadKV(kvAt(b, j, 0u, h), d);
                vv = loadKV(kvAt(b, j, 1u, h), d);
            } else if (j < kEnd) {
                kk = loadQKV(qkvAt(b, j - p.nc, 1u, h), d);
                vv = loadQKV(qkvAt(b, j - p.nc, 2u, h), d);
            }
            Ks[e] = kk;
            Vs[e] = vv;
        }
        barrier();
        uint jn = jMax > k0 ? min(BC, jMax - k0) : 0u;
        float mt[R];
        [[unroll]] for (uint r = 0; r < R; ++r) mt[r] = m[r];
        for (uint j = 0; j < jn; ++j) {
            float s[R];
            [[unroll]] for (uint r = 0; r < R; ++r) s[r] = 0.0;
            [[unroll]] for (uint d = 0; d < D4; ++d) {
                vec4 kk = Ks[j * D4 + d];
                [[unroll]] for (uint r = 0; r < R; ++r) s[r] += dot(q[r][d], kk);
            }
            [[unroll]] for (uint r = 0; r < R; ++r) {
                Ss[(j * R + r) * WG + tid] = s[r];
                mt[r] = k0 + j < rowEnd[r] ? max(mt[r], s[r]) : mt[r];
            }
        }
        [[unroll]] for (uint r = 0; r < R; ++r) {
            float corr = mt[r] > m[r] ? exp2(m[r] - mt[r]) : 1.0;  // 0 at a row's first keys (m = −∞)
            l[r] *= corr;
            m[r] = mt[r];
            [[unroll]] for (uint d = 0; d < D4; ++d) acc[r][d] *= corr;
        }
        for (uint j = 0; j < jn; ++j) {
            float pj[R];
            [[unroll]] for (uint r = 0; r < R; ++r) {
                pj[r] = k0 + j < rowEnd[r] ? exp2(Ss[(j * R + r) * WG + tid] - m[r]) : 0.0;
                l[r] += pj[r];
            }
            [[unroll]] for (uint d = 0; d < D4; ++d) {
                vec4 vv = Vs[j * D4 + d];
                [[unroll]] for (uint r = 0; r < R; ++r) acc[r][d] += pj[r] * vv;
            }
        }
    }
    [[unroll]] for (uint r = 0; r < R; ++r) {
        uint i = q0 + r * WG + tid;
        if (i < p.nq) {
            float inv = 1.0 / l[r];
            [[unroll]] for (uint d = 0; d < D4; ++d) storeO(outAt(b, i, h), 4u * d, acc[r][d] * inv);
        }
    }
}
