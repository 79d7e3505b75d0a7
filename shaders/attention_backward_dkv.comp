#version 450
// attention_backward_dkv: dv_j = Σ_i P_ij·do_i, dk_j = scale·Σ_i P_ij(do_i·v_j − Δ_i)·q_i, P_ij = exp(S_ij − lse_i).
// bindings: 0 dqkv [B·N, 3·H·DH] (dk, dv written), 1 qkv, 2 do [B·N, H·DH], 3 lse, 4 delta [B, H, N] (from _dq).
// grid: (ceil(N / (WG·R)), H, B) workgroups of WG invocations, each R key rows (COOPMAT: 16 per
// warp of 32, R = 1); query tiles of BQ rows.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;  // invocations per workgroup (COOPMAT: a multiple of 32)
layout(constant_id = 1) const uint R = 1;    // key rows per invocation: k0 + tid + r·WG (1 with COOPMAT)
layout(constant_id = 2) const uint BQ = 32;  // queries per shared-memory tile (COOPMAT: a multiple of 16)
layout(constant_id = 3) const uint DH = 64;  // head dim (COOPMAT: a multiple of 16)

#include "attention.glsl"

layout(std430, binding = 0) writeonly buffer DQKV { float dqkv[]; };
layout(std430, binding = 0) writeonly buffer DQKV4 { vec4 dqkv4[]; };
layout(std430, binding = 1) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 1) readonly buffer QKV4 { vec4 qkv4[]; };
layout(std430, binding = 2) readonly buffer DO { float dout[]; };
layout(std430, binding = 2) readonly buffer DO4 { vec4 dout4[]; };
layout(std430, binding = 3) readonly buffer LSE { float lse[]; };
layout(std430, binding = 4) readonly buffer Delta { float delta[]; };
DEFINE_LOAD4(loadQKV, qkv, qkv4)
DEFINE_LOAD4(loadDO, dout, dout4)
DEFINE_STORE4(storeDQKV, dqkv, dqkv4)

#ifdef COOPMAT
#include "attention_backward_dkv_coopmat.glsl"
#else

shared vec4 Qs[BQ * D4];
shared vec4 Gs[BQ * D4];  // do rows
shared vec2 LD[BQ];       // (lse in log2 units, delta)

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint k0 = gl_WorkGroupID.x * WG * R, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;

    vec4 k[R][D4], v[R][D4], dk[R][D4], dv[R][D4];
    uint colStart[R];      // first query that sees key r: the start of its frame
    uint iMin = p.n;       // first query any of this invocation's keys is seen by
    [[unroll]] for (uint r = 0; r < R; ++r) {
        uint j = k0 + r * WG + tid;
        bool live = j < p.n;
        [[unroll]] for (uint d = 0; d < D4; ++d) {
            k[r][d] = live ? loadQKV(qkvAt(p.qkvOff, b, j, 1u, h, 0u), 4u * d) * (p.scale * LOG2E) : vec4(0.0);
            v[r][d] = live ? loadQKV(qkvAt(p.qkvOff, b, j, 2u, h, 0u), 4u * d) : vec4(0.0);
            dk[r][d] = vec4(0.0);
            dv[r][d] = vec4(0.0);
        }
        colStart[r] = live ? frameStart(j) : p.n;
        iMin = min(iMin, colStart[r]);
    }
    // Queries before the frame of this block's first key never see it: their tiles are skipped.
    for (uint i0 = frameStart(k0); i0 < p.n; i0 += BQ) {
        barrier();
        for (uint e = tid; e < BQ * D4; e += WG) {
            uint i = i0 + e / D4, d = 4u * (e % D4);
            bool ok = i < p.n;
            Qs[e] = ok ? loadQKV(qkvAt(p.qkvOff, b, i, 0u, h, 0u), d) : vec4(0.0);
            Gs[e] = ok ? loadDO(outAt(p.doOff, b, i, h, 0u), d) : vec4(0.0);
        }
        for (uint e = tid; e < BQ; e += WG) {
            uint i = i0 + e;
            LD[e] = i < p.n ? vec2(lse[rowAt(p.lseOff, b, h, i)] * LOG2E, delta[rowAt(p.deltaOff, b, h, i)]) : vec2(0.0);
        }
        barrier();
        // A key is seen by a suffix of the tile's queries (the mask is block-lower-triangular).
        uint iFirst = iMin > i0 ? min(BQ, iMin - i0) : 0u;
        uint iEnd = min(BQ, p.n - i0);
        for (uint ii = iFirst; ii < iEnd; ++ii) {
            vec4 qq[D4], gg[D4];
            float s[R], dp[R];
            [[unroll]] for (uint r = 0; r < R; ++r) { s[r] = 0.0; dp[r] = 0.0; }
            [[unroll]] for (uint d = 0; d < D4; ++d) {
                qq[d] = Qs[ii * D4 + d];
                gg[d] = Gs[ii * D4 + d];
                [[unroll]] for (uint r = 0; r < R; ++r) {
                    s[r] += dot(qq[d], k[r][d]);
                    dp[r] += dot(gg[d], v[r][d]);
                }
            }
            vec2 ld = LD[ii];
            [[unroll]] for (uint r = 0; r < R; ++r) {
                // P_ij and dS_ij, exactly 0 for masked pairs.
                float pr = i0 + ii >= colStart[r] ? exp2(s[r] - ld.x) : 0.0;
                float ds = pr * (dp[r] - ld.y);
                [[unroll]] for (uint d = 0; d < D4; ++d) {
                    dv[r][d] += pr * gg[d];
                    dk[r][d] += ds * qq[d];
                }
            }
        }
    }
    [[unroll]] for (uint r = 0; r < R; ++r) {
        uint j = k0 + r * WG + tid;
        if (j < p.n) {
            [[unroll]] for (uint d = 0; d < D4; ++d) {
                storeDQKV(qkvAt(p.dqkvOff, b, j, 1u, h, 0u), 4u * d, dk[r][d] * p.scale);
                storeDQKV(qkvAt(p.dqkvOff, b, j, 2u, h, 0u), 4u * d, dv[r][d]);
            }
        }
    }
}
#endif
