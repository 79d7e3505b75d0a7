#version 450
// attention_backward_dq: Δ_i = do_i·o_i; dq_i = scale·Σ_j P_ij(do_i·v_j − Δ_i)·k_j, P_ij = exp(scale·q_i·k_j − lse_i) (spec §3 mask).
// bindings: 0 dqkv [B·N, 3·H·DH] (dq part written), 1 delta [B, H, N] (written), 2 qkv, 3 o, 4 do [B·N, H·DH], 5 lse [B, H, N].
// grid: (ceil(N/BR), H, B) workgroups of BR invocations, one query row each; key tiles of BC rows.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint BR = 64;  // query rows per workgroup, one per invocation
layout(constant_id = 1) const uint BC = 32;  // keys per shared-memory tile
layout(constant_id = 2) const uint DH = 64;  // head dim

#include "attention.glsl"

layout(std430, binding = 0) writeonly buffer DQKV { float dqkv[]; };
layout(std430, binding = 1) writeonly buffer Delta { float delta[]; };
layout(std430, binding = 2) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 3) readonly buffer O { float o[]; };
layout(std430, binding = 4) readonly buffer DO { float dout[]; };
layout(std430, binding = 5) readonly buffer LSE { float lse[]; };

shared float Ks[BC * DH];
shared float Vs[BC * DH];

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint q0 = gl_WorkGroupID.x * BR, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
    uint i = q0 + tid;
    bool live = i < p.n;

    float q[DH], g[DH], dq[DH];
    float dlt = 0.0;
    [[unroll]] for (uint d = 0; d < DH; ++d) {
        q[d] = live ? qkv[qkvAt(p.qkvOff, b, i, 0u, h, d)] * (p.scale * LOG2E) : 0.0;
        g[d] = live ? dout[outAt(p.doOff, b, i, h, d)] : 0.0;
        dlt += live ? g[d] * o[outAt(p.oOff, b, i, h, d)] : 0.0;
        dq[d] = 0.0;
    }
    float lse2 = live ? lse[rowAt(p.lseOff, b, h, i)] * LOG2E : 0.0;
    uint rowEnd = live ? frameEnd(i) : 0u;
    uint kEnd = frameEnd(min(q0 + BR, p.n) - 1u);

    for (uint k0 = 0; k0 < kEnd; k0 += BC) {
        barrier();
        for (uint e = tid; e < BC * DH; e += BR) {
            uint j = k0 + e / DH, d = e % DH;
            Ks[e] = j < kEnd ? qkv[qkvAt(p.qkvOff, b, j, 1u, h, d)] : 0.0;
            Vs[e] = j < kEnd ? qkv[qkvAt(p.qkvOff, b, j, 2u, h, d)] : 0.0;
        }
        barrier();
        uint jn = rowEnd > k0 ? min(BC, rowEnd - k0) : 0u;
        for (uint j = 0; j < jn; ++j) {
            float s = 0.0, dp = 0.0;
            [[unroll]] for (uint d = 0; d < DH; ++d) {
                s += q[d] * Ks[j * DH + d];
                dp += g[d] * Vs[j * DH + d];
            }
            float ds = exp2(s - lse2) * (dp - dlt);
            [[unroll]] for (uint d = 0; d < DH; ++d) dq[d] += ds * Ks[j * DH + d];
        }
    }
    if (!live) return;
    delta[rowAt(p.deltaOff, b, h, i)] = dlt;
    [[unroll]] for (uint d = 0; d < DH; ++d) dqkv[qkvAt(p.dqkvOff, b, i, 0u, h, d)] = dq[d] * p.scale;
}
