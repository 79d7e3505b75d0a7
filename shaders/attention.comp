#version 450
// attention: o_i = Σ_j softmax_j(S_ij)·v_j, lse_i = log Σ_j exp(S_ij), S_ij = scale·q_i·k_j + M_ij (spec §2.5, §3).
// bindings: 0 qkv [B·N, 3·H·DH], 1 o [B·N, H·DH], 2 lse [B, H, N] (f32 windows, offsets in push constants).
// grid: (ceil(N / (WG·R)), H, B) workgroups of WG invocations, each R query rows (COOPMAT: 16 per warp of
// 32, R = 1); key tiles of BC rows. CPU (attention_cpu.glsl): 0 qkv as texels; (ceil(N / MB), H, B)
// workgroups of one subgroup, each MB query rows.
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
layout(binding = 0, rgba32ui) uniform readonly uimageBuffer texQKV;
layout(std430, binding = 1) writeonly buffer O { float o[]; };
layout(std430, binding = 1) writeonly buffer O4 { vec4 o4[]; };
layout(std430, binding = 2) writeonly buffer LSE { float lse[]; };
DEFINE_STORE4(storeO, o, o4)

// One block of MB queries (lane l holds query i0 + l for the broadcasts). Per step of NV·L keys: the
// scores s = q·k with the keys on the lanes, the online softmax (the rows' max over the lanes), then
// o += P·v with the head dims on the lanes and each key's weights broadcast from its lane.
void main() {
    attnLoadPush();  // push constants into registers, outside the loops (attention.glsl)
    const uint lseOff = p.lseOff, oOff = p.oOff, qkvOff = p.qkvOff;
    const float scale = p.scale;
    const uint l = gl_SubgroupInvocationID;
    const uint n = attnN, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z, i0 = gl_WorkGroupID.x * MB;
    const float qscale = scale * LOG2E;
    const uint qAt = qkvAt(qkvOff, b, min(i0 + min(l, MB - 1), n - 1), 0u, h, 0u);
    uint rowEnd[MB];
    [[unroll]] for (uint i = 0; i < MB; i++) rowEnd[i] = i0 + i < n ? frameEnd(i0 + i) : 0u;
    // Keys past the last frame any row of this block sees are skipped, not masked.
    const uint kEnd = frameEnd(min(i0 + MB, n) - 1u);
    float m[MB], lp[MB];  // running max (log2 units); this lane's part of Σ exp2(s − m)
    vec4 acc[MB][U];      // o rows: group u of lane l holds elements 4(uL + l)..+3
    [[unroll]] for (uint i = 0; i < MB; i++) {
        m[i] = NEG_INF;
        lp[i] = 0.0;
        [[unroll]] for (uint u = 0; u < U; u++) acc[i][u] = vec4(0.0);
    }
    for (uint j0 = 0; j0 < kEnd; j0 += NV * L) {
        float s[MB][NV];  // s[i][v]: query i0 + i, key j0 + v·L + l
        uint kAt[NV];
        [[unroll]] for (uint v = 0; v < NV; v++) {
            kAt[v] = qkvAt(qkvOff, b, min(j0 + v * L + l, n - 1), 1u, h, 0u);
            [[unroll]] for (uint i = 0; i < MB; i++) s[i][v] = 0.0;
        }
        for (uint t = 0; t < T4; t++) {
            const vec4 q = TEXEL(texQKV, qAt, t) * qscale;
            vec4 k[NV];
            [[unroll]] for (uint v = 0; v < NV; v++) k[v] = TEXEL(texQKV, kAt[v], t);
            [[unroll]] for (uint c = 0; c < 4; c++) {
                [[unroll]] for (uint i = 0; i < MB; i++) {
                    const float a = subgroupShuffle(q[c], i);
                    [[unroll]] for (uint v = 0; v < NV; v++) s[i][v] += a * k[v][c];
                }
            }
        }
        float pr[MB][NV];
        [[unroll]] for (uint i = 0; i < MB; i++) {
            float mx = NEG_INF;
            [[unroll]] for (uint v = 0; v < NV; v++) {
                s[i][v] = j0 + v * L + l < rowEnd[i] ? s[i][v] : NEG_INF;
                mx = max(mx, s[i][v]);
            }
            const float mn = max(m[i], laneMax(mx));
            const float corr = mn > m[i] ? exp2(m[i] - mn) : 1.0;  // 0 at a row's first keys (m = −∞)
            m[i] = mn;
            lp[i] *= corr;
            [[unroll]] for (uint u = 0; u < U; u++) acc[i][u] *= corr;
            [[unroll]] for (uint v = 0; v < NV; v++) {
                // Masked pairs get p = 0 exactly, so for finite inputs the result is bit-identical to a run
                // without the hidden keys (spec §3).
                pr[i][v] = s[i][v] == NEG_INF ? 0.0 : exp2(s[i][v] - mn);
                lp[i] += pr[i][v];
            }
        }
        [[unroll]] for (uint v = 0; v < NV; v++) {
            [[unroll]] for (uint c = 0; c < L; c++) {
                const uint vAt = qkvAt(qkvOff, b, min(j0 + v * L + c, n - 1), 2u, h, 0u);
                vec4 vv[U];
                [[unroll]] for (uint u = 0; u < U; u++) vv[u] = TEXEL(texQKV, vAt, min(u * L + l, T4 - 1));
                [[unroll]] for (uint i = 0; i < MB; i++) {
                    const float w = subgroupShuffle(pr[i][v], c);
                    [[unroll]] for (uint u = 0; u < U; u++) acc[i][u] += w * vv[u];
                }
            }
        }
    }
    [[unroll]] for (uint i = 0; i < MB; i++) {
        const uint row = i0 + i;
        const float lsum = laneSum(lp[i]);
        if (row < n) {
            const float inv = 1.0 / lsum;
            [[unroll]] for (uint u = 0; u < U; u++) {
                if (u * L + l < T4) storeO(outAt(oOff, b, row, h, 0u), 4u * (u * L + l), acc[i][u] * inv);
            }
            if (l == 0u) lse[rowAt(lseOff, b, h, row)] = m[i] * LN2 + log(lsum);
        }
    }
}
#else
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
#endif // !CPU
