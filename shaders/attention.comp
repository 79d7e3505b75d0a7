#version 450
// attention: o_i = Σ_j softmax_j(scale·q_i·k_j + M_ij)·v_j, lse_i = log Σ_j exp(scale·q_i·k_j + M_ij) (spec §2.5, §3).
// bindings: 0 qkv [B·N, 3·H·DH], 1 o [B·N, H·DH], 2 lse [B, H, N] (f32 windows, offsets in push constants).
// grid: (ceil(N/BR), H, B) workgroups of BR invocations, one query row each; key tiles of BC rows.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint BR = 64;  // query rows per workgroup, one per invocation
layout(constant_id = 1) const uint BC = 32;  // keys per shared-memory tile
layout(constant_id = 2) const uint DH = 64;  // head dim

#include "attention.glsl"

layout(std430, binding = 0) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 1) writeonly buffer O { float o[]; };
layout(std430, binding = 2) writeonly buffer LSE { float lse[]; };

shared float Ks[BC * DH];
shared float Vs[BC * DH];
shared float Ss[BC * BR];  // scores of the current tile, [key][row] so that a row's lanes are adjacent

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint q0 = gl_WorkGroupID.x * BR, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
    uint i = q0 + tid;
    bool live = i < p.n;

    float q[DH], acc[DH];
    [[unroll]] for (uint d = 0; d < DH; ++d) {
        q[d] = live ? qkv[qkvAt(p.qkvOff, b, i, 0u, h, d)] * (p.scale * LOG2E) : 0.0;
        acc[d] = 0.0;
    }
    float m = -1.0 / 0.0, l = 0.0;  // running max (log2 units) and sum of exp2(s − m)
    uint rowEnd = live ? frameEnd(i) : 0u;
    // Keys past the last frame any row of this block sees are skipped, not masked.
    uint kEnd = frameEnd(min(q0 + BR, p.n) - 1u);

    for (uint k0 = 0; k0 < kEnd; k0 += BC) {
        barrier();
        for (uint e = tid; e < BC * DH; e += BR) {
            uint j = k0 + e / DH, d = e % DH;
            Ks[e] = j < kEnd ? qkv[qkvAt(p.qkvOff, b, j, 1u, h, d)] : 0.0;
            Vs[e] = j < kEnd ? qkv[qkvAt(p.qkvOff, b, j, 2u, h, d)] : 0.0;
        }
        barrier();
        // Keys this row may see in the tile: a prefix, because the mask is block-lower-triangular.
        uint jn = rowEnd > k0 ? min(BC, rowEnd - k0) : 0u;
        if (jn > 0u) {
            float mt = m;
            for (uint j = 0; j < jn; ++j) {
                float s = 0.0;
                [[unroll]] for (uint d = 0; d < DH; ++d) s += q[d] * Ks[j * DH + d];
                Ss[j * BR + tid] = s;
                mt = max(mt, s);
            }
            float corr = exp2(m - mt);  // 0 on the first tile, where m = −∞
            l *= corr;
            [[unroll]] for (uint d = 0; d < DH; ++d) acc[d] *= corr;
            for (uint j = 0; j < jn; ++j) {
                float pj = exp2(Ss[j * BR + tid] - mt);
                l += pj;
                [[unroll]] for (uint d = 0; d < DH; ++d) acc[d] += pj * Vs[j * DH + d];
            }
            m = mt;
        }
    }
    if (!live) return;
    float inv = 1.0 / l;
    [[unroll]] for (uint d = 0; d < DH; ++d) o[outAt(p.oOff, b, i, h, d)] = acc[d] * inv;
    lse[rowAt(p.lseOff, b, h, i)] = m * LN2 + log(l);
}
