#version 450
// attention_backward_dq: Δ_i = do_i·o_i, dq_i = scale·Σ_j P_ij(do_i·v_j − Δ_i)·k_j, P_ij = exp(S_ij − lse_i).
// bindings: 0 dqkv [B·N, 3·H·DH] (dq written), 1 delta [B, H, N], 2 qkv, 3 o, 4 do [B·N, H·DH], 5 lse [B, H, N].
// grid: (ceil(N / (WG·R)), H, B) workgroups of WG invocations, each R query rows (COOPMAT: 16 per
// warp of 32, R = 1); key tiles of BC rows. CPU (attention_cpu.glsl): 2 qkv, 3 o, 4 do as texels;
// (ceil(N / MB), H, B) workgroups of one subgroup, each MB query rows.
#include "common.glsl"

#ifdef CPU
#include "attention_cpu.glsl"
#else
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;  // invocations per workgroup (COOPMAT: a multiple of 32)
layout(constant_id = 1) const uint R = 1;    // query rows per invocation: q0 + tid + r·WG (1 with COOPMAT)
layout(constant_id = 2) const uint BC = 32;  // keys per shared-memory tile (COOPMAT: a multiple of 16)
layout(constant_id = 3) const uint DH = 64;  // head dim (COOPMAT: a multiple of 16)
#endif

#include "attention.glsl"

#ifdef CPU
layout(std430, binding = 0) writeonly buffer DQKV { float dqkv[]; };
layout(std430, binding = 0) writeonly buffer DQKV4 { vec4 dqkv4[]; };
layout(std430, binding = 1) writeonly buffer Delta { float delta[]; };
layout(binding = 2, rgba32ui) uniform readonly uimageBuffer texQKV;
layout(binding = 3, rgba32ui) uniform readonly uimageBuffer texO;
layout(binding = 4, rgba32ui) uniform readonly uimageBuffer texDO;
layout(std430, binding = 5) readonly buffer LSE { float lse[]; };
DEFINE_STORE4(storeDQKV, dqkv, dqkv4)

// One block of MB queries (lane l holds query i0 + l for the broadcasts). Δ_i first (head dims on the
// lanes), then per step of NV·L keys: s = q·k and dP = do·v with the keys on the lanes, dS = P(dP − Δ),
// and dq += dS·k with the head dims on the lanes.
void main() {
    attnLoadPush();  // push constants into registers, outside the loops (attention.glsl)
    const uint deltaOff = p.deltaOff, doOff = p.doOff, dqkvOff = p.dqkvOff, lseOff = p.lseOff, oOff = p.oOff, qkvOff = p.qkvOff;
    const float scale = p.scale;
    const uint l = gl_SubgroupInvocationID;
    const uint n = attnN, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z, i0 = gl_WorkGroupID.x * MB;
    const float qscale = scale * LOG2E;
    const uint lane = min(i0 + min(l, MB - 1), n - 1);
    const uint qAt = qkvAt(qkvOff, b, lane, 0u, h, 0u), gAt = outAt(doOff, b, lane, h, 0u);
    uint rowEnd[MB];
    float lse2[MB], dlt[MB];
    vec4 acc[MB][U];  // dq rows: group u of lane l holds elements 4(uL + l)..+3
    [[unroll]] for (uint i = 0; i < MB; i++) {
        const uint row = min(i0 + i, n - 1);
        rowEnd[i] = i0 + i < n ? frameEnd(i0 + i) : 0u;
        lse2[i] = lse[rowAt(lseOff, b, h, row)] * LOG2E;
        float part = 0.0;
        [[unroll]] for (uint u = 0; u < U; u++) {
            const uint t = min(u * L + l, T4 - 1);
            const vec4 g = TEXEL(texDO, outAt(doOff, b, row, h, 0u), t), o = TEXEL(texO, outAt(oOff, b, row, h, 0u), t);
            part += u * L + l < T4 ? dot(g, o) : 0.0;
            acc[i][u] = vec4(0.0);
        }
        dlt[i] = laneSum(part);
    }
    const uint kEnd = frameEnd(min(i0 + MB, n) - 1u);
    for (uint j0 = 0; j0 < kEnd; j0 += NV * L) {
        float s[MB][NV], dp[MB][NV];  // query i0 + i, key j0 + v·L + l
        uint kAt[NV];
        [[unroll]] for (uint v = 0; v < NV; v++) {
            kAt[v] = qkvAt(qkvOff, b, min(j0 + v * L + l, n - 1), 1u, h, 0u);
            [[unroll]] for (uint i = 0; i < MB; i++) s[i][v] = dp[i][v] = 0.0;
        }
        for (uint t = 0; t < T4; t++) {
            const vec4 q = TEXEL(texQKV, qAt, t) * qscale, g = TEXEL(texDO, gAt, t);
            vec4 k[NV], vv[NV];
            [[unroll]] for (uint v = 0; v < NV; v++) {
                k[v] = TEXEL(texQKV, kAt[v], t);
                vv[v] = TEXEL(texQKV, kAt[v] + attnHeads * DH, t);  // the v row follows the k row by H·DH
            }
            [[unroll]] for (uint c = 0; c < 4; c++) {
                [[unroll]] for (uint i = 0; i < MB; i++) {
                    const float a = subgroupShuffle(q[c], i), e = subgroupShuffle(g[c], i);
                    [[unroll]] for (uint v = 0; v < NV; v++) {
                        s[i][v] += a * k[v][c];
                        dp[i][v] += e * vv[v][c];
                    }
                }
            }
        }
        float ds[MB][NV];
        [[unroll]] for (uint i = 0; i < MB; i++) {
            [[unroll]] for (uint v = 0; v < NV; v++) {
                // dS_ij = P_ij (dP_ij − Δ_i); exactly 0 for masked pairs.
                ds[i][v] = j0 + v * L + l < rowEnd[i] ? exp2(s[i][v] - lse2[i]) * (dp[i][v] - dlt[i]) : 0.0;
            }
        }
        [[unroll]] for (uint v = 0; v < NV; v++) {
            [[unroll]] for (uint c = 0; c < L; c++) {
                const uint at = qkvAt(qkvOff, b, min(j0 + v * L + c, n - 1), 1u, h, 0u);
                vec4 kk[U];
                [[unroll]] for (uint u = 0; u < U; u++) kk[u] = TEXEL(texQKV, at, min(u * L + l, T4 - 1));
                [[unroll]] for (uint i = 0; i < MB; i++) {
                    const float w = subgroupShuffle(ds[i][v], c);
                    [[unroll]] for (uint u = 0; u < U; u++) acc[i][u] += w * kk[u];
                }
            }
        }
    }
    [[unroll]] for (uint i = 0; i < MB; i++) {
        const uint row = i0 + i;
        if (row < n) {
            [[unroll]] for (uint u = 0; u < U; u++) {
                if (u * L + l < T4) storeDQKV(qkvAt(dqkvOff, b, row, 0u, h, 0u), 4u * (u * L + l), acc[i][u] * scale);
            }
            if (l == 0u) delta[rowAt(deltaOff, b, h, row)] = dlt[i];
        }
    }
}
#else

layout(std430, binding = 0) writeonly buffer DQKV { float dqkv[]; };
layout(std430, binding = 0) writeonly buffer DQKV4 { vec4 dqkv4[]; };
layout(std430, binding = 1) writeonly buffer Delta { float delta[]; };
layout(std430, binding = 2) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 2) readonly buffer QKV4 { vec4 qkv4[]; };
layout(std430, binding = 3) readonly buffer O { float o[]; };
layout(std430, binding = 3) readonly buffer O4 { vec4 o4[]; };
layout(std430, binding = 4) readonly buffer DO { float dout[]; };
layout(std430, binding = 4) readonly buffer DO4 { vec4 dout4[]; };
layout(std430, binding = 5) readonly buffer LSE { float lse[]; };
DEFINE_LOAD4(loadQKV, qkv, qkv4)
DEFINE_LOAD4(loadO, o, o4)
DEFINE_LOAD4(loadDO, dout, dout4)
DEFINE_STORE4(storeDQKV, dqkv, dqkv4)

#ifdef COOPMAT
#include "attention_backward_dq_coopmat.glsl"
#else

shared vec4 Ks[BC * D4];
shared vec4 Vs[BC * D4];

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint q0 = gl_WorkGroupID.x * WG * R, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;

    vec4 q[R][D4], g[R][D4], dq[R][D4];
    float lse2[R], dlt[R];
    uint rowEnd[R];
    uint jMax = 0u;
    [[unroll]] for (uint r = 0; r < R; ++r) {
        uint i = q0 + r * WG + tid;
        bool live = i < p.n;
        dlt[r] = 0.0;
        [[unroll]] for (uint d = 0; d < D4; ++d) {
            q[r][d] = live ? loadQKV(qkvAt(p.qkvOff, b, i, 0u, h, 0u), 4u * d) * (p.scale * LOG2E) : vec4(0.0);
            g[r][d] = live ? loadDO(outAt(p.doOff, b, i, h, 0u), 4u * d) : vec4(0.0);
            dlt[r] += live ? dot(g[r][d], loadO(outAt(p.oOff, b, i, h, 0u), 4u * d)) : 0.0;
            dq[r][d] = vec4(0.0);
        }
        lse2[r] = live ? lse[rowAt(p.lseOff, b, h, i)] * LOG2E : 0.0;
        rowEnd[r] = live ? frameEnd(i) : 0u;
        jMax = max(jMax, rowEnd[r]);
    }
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
        uint jn = jMax > k0 ? min(BC, jMax - k0) : 0u;
        for (uint j = 0; j < jn; ++j) {
            vec4 kk[D4];
            float s[R], dp[R];
            [[unroll]] for (uint r = 0; r < R; ++r) { s[r] = 0.0; dp[r] = 0.0; }
            [[unroll]] for (uint d = 0; d < D4; ++d) {
                kk[d] = Ks[j * D4 + d];
                vec4 vv = Vs[j * D4 + d];
                [[unroll]] for (uint r = 0; r < R; ++r) {
                    s[r] += dot(q[r][d], kk[d]);
                    dp[r] += dot(g[r][d], vv);
                }
            }
            [[unroll]] for (uint r = 0; r < R; ++r) {
                // dS_ij = P_ij (dP_ij − Δ_i); exactly 0 for masked pairs.
                float ds = k0 + j < rowEnd[r] ? exp2(s[r] - lse2[r]) * (dp[r] - dlt[r]) : 0.0;
                [[unroll]] for (uint d = 0; d < D4; ++d) dq[r][d] += ds * kk[d];
            }
        }
    }
    [[unroll]] for (uint r = 0; r < R; ++r) {
        uint i = q0 + r * WG + tid;
        if (i < p.n) {
            delta[rowAt(p.deltaOff, b, h, i)] = dlt[r];
            [[unroll]] for (uint d = 0; d < D4; ++d) storeDQKV(qkvAt(p.dqkvOff, b, i, 0u, h, 0u), 4u * d, dq[r][d] * p.scale);
        }
    }
}
#endif
#endif // !CPU
