#version 450
// attention: o_i = Σ_j softmax_j(S_ij)·v_j, lse_i = log Σ_j exp(S_ij), S_ij = scale·q_i·k_j + M_ij (spec §2.5, §3).
// bindings: 0 qkv [B·N, 3·H·DH], 1 o [B·N, H·DH], 2 lse [B, H, N] (f32 windows, offsets in push constants).
// grid: (ceil(N / (WG·R)), H, B) workgroups of WG invocations, each R query rows (COOPMAT: 16 per warp of
// 32, R = 1); key tiles of BC rows.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;  // invocations per workgroup (COOPMAT: a multiple of 32)
layout(constant_id = 1) const uint R = 1;    // query rows per invocation: q0 + tid + r·WG (1 with COOPMAT)
layout(constant_id = 2) const uint BC = 32;  // keys per shared-memory tile (COOPMAT: a multiple of 16)
layout(constant_id = 3) const uint DH = 64;  // head dim (COOPMAT: a multiple of 16)

#include "attention.glsl"

layout(std430, binding = 0) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 0) readonly buffer QKV4 { vec4 qkv4[]; };
layout(std430, binding = 1) writeonly buffer O { float o[]; };
layout(std430, binding = 1) writeonly buffer O4 { vec4 o4[]; };
layout(std430, binding = 2) writeonly buffer LSE { float lse[]; };
DEFINE_LOAD4(loadQKV, qkv, qkv4)
DEFINE_STORE4(storeO, o, o4)

#ifdef COOPMAT
#include "attention_coopmat.glsl"
#else

shared vec4 Ks[BC * D4];
shared vec4 Vs[BC * D4];
shared float Ss[BC * R * WG];  // scores of the current tile, [key][row]

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint q0 = gl_WorkGroupID.x * WG * R, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;

    vec4 q[R][D4], acc[R][D4];
    float m[R], l[R];
    uint rowEnd[R];
    uint jMax = 0u;  // one past the last key any of this invocation's rows sees
    [[unroll]] for (uint r = 0; r < R; ++r) {
        uint i = q0 + r * WG + tid;
        bool live = i < p.n;
        [[unroll]] for (uint d = 0; d < D4; ++d) {
            q[r][d] = live ? loadQKV(qkvAt(p.qkvOff, b, i, 0u, h, 0u), 4u * d) * (p.scale * LOG2E) : vec4(0.0);
            acc[r][d] = vec4(0.0);
        }
        m[r] = -1.0 / 0.0;  // running max of the scores seen (log2 units)
        l[r] = 0.0;         // running Σ exp2(s − m)
        rowEnd[r] = live ? frameEnd(i) : 0u;
        jMax = max(jMax, rowEnd[r]);
    }
    // Keys past the last frame any row of this block sees are skipped, not masked.
    uint kEnd = frameEnd(min(q0 + WG * R, p.n) - 1u);

    for (uint k0 = 0; k0 < kEnd; k0 += BC) {
        barrier();
        for (uint e = tid; e < BC * D4; e += WG) {
            uint j = k0 + e / D4, d = 4u * (e % D4);
            bool ok = j < kEnd;
            Ks[e] = ok ? loadQKV(qkvAt(p.qkvOff, b, j, 1u, h, 0u), d) : vec4(0.0);
            Vs[e] = ok ? loadQKV(qkvAt(p.qkvOff, b, j, 2u, h, 0u), d) : vec4(0.0);
        }
        barrier();
        // A row sees a prefix of the tile (the mask is block-lower-triangular); jn covers the longest.
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
                // Masked pairs get p = 0 exactly, so for finite inputs the result is bit-identical to a run
                // without the hidden keys (what KV caching relies on, spec §3).
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
        if (i < p.n) {
            float inv = 1.0 / l[r];
            [[unroll]] for (uint d = 0; d < D4; ++d) storeO(outAt(p.oOff, b, i, h, 0u), 4u * d, acc[r][d] * inv);
            lse[rowAt(p.lseOff, b, h, i)] = m[r] * LN2 + log(l[r]);
        }
    }
}
#endif
