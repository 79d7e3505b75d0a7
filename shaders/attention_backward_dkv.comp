#version 450
// attention_backward_dkv: dv_j = Σ_i P_ij·do_i, dk_j = scale·Σ_i P_ij(do_i·v_j − Δ_i)·q_i, P_ij = exp(S_ij − lse_i).
// bindings: 0 dqkv [B·N, 3·H·DH] (dk, dv written), 1 qkv, 2 do [B·N, H·DH], 3 lse, 4 delta [B, H, N] (from _dq).
// grid: (ceil(N / (WG·R)), H, B) workgroups of WG invocations, each R key rows (COOPMAT: 16 per
// warp of 32, R = 1); query tiles of BQ rows. CPU (attention_cpu.glsl): 1 qkv, 2 do as texels;
// (ceil(N / MB), H, B) workgroups of one subgroup, each MB key rows.
#include "common.glsl"

#ifdef CPU
#include "attention_cpu.glsl"
#else
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;  // invocations per workgroup (COOPMAT: a multiple of 32)
layout(constant_id = 1) const uint R = 1;    // key rows per invocation: k0 + tid + r·WG (1 with COOPMAT)
layout(constant_id = 2) const uint BQ = 32;  // queries per shared-memory tile (COOPMAT: a multiple of 16)
layout(constant_id = 3) const uint DH = 64;  // head dim (COOPMAT: a multiple of 16)
#endif

#include "attention.glsl"

#ifdef CPU
layout(std430, binding = 0) writeonly buffer DQKV { float dqkv[]; };
layout(std430, binding = 0) writeonly buffer DQKV4 { vec4 dqkv4[]; };
layout(binding = 1, rgba32ui) uniform readonly uimageBuffer texQKV;
layout(binding = 2, rgba32ui) uniform readonly uimageBuffer texDO;
layout(std430, binding = 3) readonly buffer LSE { float lse[]; };
layout(std430, binding = 4) readonly buffer Delta { float delta[]; };
DEFINE_STORE4(storeDQKV, dqkv, dqkv4)

// One block of MB keys (lane l holds key j0 + l for the broadcasts). Per step of NV·L queries: Sᵀ = k·q
// and dPᵀ = v·do with the queries on the lanes, Pᵀ and dSᵀ = Pᵀ(dPᵀ − Δ), then dv += Pᵀ·do and
// dk += dSᵀ·q with the head dims on the lanes.
void main() {
    attnLoadPush();  // push constants into registers, outside the loops (attention.glsl)
    const uint deltaOff = p.deltaOff, doOff = p.doOff, dqkvOff = p.dqkvOff, lseOff = p.lseOff, qkvOff = p.qkvOff;
    const float scale = p.scale;
    const uint l = gl_SubgroupInvocationID;
    const uint n = attnN, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z, j0 = gl_WorkGroupID.x * MB;
    const float kscale = scale * LOG2E;
    const uint kAt = qkvAt(qkvOff, b, min(j0 + min(l, MB - 1), n - 1), 1u, h, 0u);
    const uint vAt = kAt + attnHeads * DH;  // the v row follows the k row by H·DH
    uint colStart[MB];  // first query that sees key j0 + i: the start of its frame
    vec4 dk[MB][U], dv[MB][U];  // group u of lane l holds elements 4(uL + l)..+3
    [[unroll]] for (uint i = 0; i < MB; i++) {
        colStart[i] = j0 + i < n ? frameStart(j0 + i) : n;
        [[unroll]] for (uint u = 0; u < U; u++) dk[i][u] = dv[i][u] = vec4(0.0);
    }
    // Queries before the frame of this block's first key never see it: they are skipped.
    for (uint q0 = frameStart(j0); q0 < n; q0 += NV * L) {
        float s[MB][NV], dp[MB][NV];  // key j0 + i, query q0 + v·L + l
        uint qAt[NV], gAt[NV];
        float lse2[NV], dlt[NV];
        [[unroll]] for (uint v = 0; v < NV; v++) {
            const uint q = min(q0 + v * L + l, n - 1);
            qAt[v] = qkvAt(qkvOff, b, q, 0u, h, 0u);
            gAt[v] = outAt(doOff, b, q, h, 0u);
            lse2[v] = lse[rowAt(lseOff, b, h, q)] * LOG2E;
            dlt[v] = delta[rowAt(deltaOff, b, h, q)];
            [[unroll]] for (uint i = 0; i < MB; i++) s[i][v] = dp[i][v] = 0.0;
        }
        for (uint t = 0; t < T4; t++) {
            const vec4 k = TEXEL(texQKV, kAt, t) * kscale, vr = TEXEL(texQKV, vAt, t);
            vec4 q[NV], g[NV];
            [[unroll]] for (uint v = 0; v < NV; v++) {
                q[v] = TEXEL(texQKV, qAt[v], t);
                g[v] = TEXEL(texDO, gAt[v], t);
            }
            [[unroll]] for (uint c = 0; c < 4; c++) {
                [[unroll]] for (uint i = 0; i < MB; i++) {
                    const float a = subgroupShuffle(k[c], i), e = subgroupShuffle(vr[c], i);
                    [[unroll]] for (uint v = 0; v < NV; v++) {
                        s[i][v] += a * q[v][c];
                        dp[i][v] += e * g[v][c];
                    }
                }
            }
        }
        float pr[MB][NV], ds[MB][NV];
        [[unroll]] for (uint i = 0; i < MB; i++) {
            [[unroll]] for (uint v = 0; v < NV; v++) {
                // Pᵀ and dSᵀ, exactly 0 for masked pairs.
                const uint q = q0 + v * L + l;
                const bool seen = q >= colStart[i] && q < n;
                pr[i][v] = seen ? exp2(s[i][v] - lse2[v]) : 0.0;
                ds[i][v] = seen ? pr[i][v] * (dp[i][v] - dlt[v]) : 0.0;
            }
        }
        [[unroll]] for (uint v = 0; v < NV; v++) {
            [[unroll]] for (uint c = 0; c < L; c++) {
                const uint q = min(q0 + v * L + c, n - 1);
                const uint qa = qkvAt(qkvOff, b, q, 0u, h, 0u), ga = outAt(doOff, b, q, h, 0u);
                vec4 qq[U], gg[U];
                [[unroll]] for (uint u = 0; u < U; u++) {
                    const uint t = min(u * L + l, T4 - 1);
                    qq[u] = TEXEL(texQKV, qa, t);
                    gg[u] = TEXEL(texDO, ga, t);
                }
                [[unroll]] for (uint i = 0; i < MB; i++) {
                    const float wp = subgroupShuffle(pr[i][v], c), ws = subgroupShuffle(ds[i][v], c);
                    [[unroll]] for (uint u = 0; u < U; u++) {
                        dv[i][u] += wp * gg[u];
                        dk[i][u] += ws * qq[u];
                    }
                }
            }
        }
    }
    [[unroll]] for (uint i = 0; i < MB; i++) {
        const uint j = j0 + i;
        if (j < n) {
            [[unroll]] for (uint u = 0; u < U; u++) {
                if (u * L + l < T4) {
                    storeDQKV(qkvAt(dqkvOff, b, j, 1u, h, 0u), 4u * (u * L + l), dk[i][u] * scale);
                    storeDQKV(qkvAt(dqkvOff, b, j, 2u, h, 0u), 4u * (u * L + l), dv[i][u]);
                }
            }
        }
    }
}
#else

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
#endif // !CPU
