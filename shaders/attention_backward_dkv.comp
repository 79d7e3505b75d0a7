#version 450
// attention_backward_dkv: dv_j = Σ_i P_ij·do_i, dk_j = scale·Σ_i P_ij(do_i·v_j − Δ_i)·q_i, P_ij = exp(scale·q_i·k_j − lse_i) (spec §3 mask).
// bindings: 0 dqkv [B·N, 3·H·DH] (dk, dv parts written), 1 qkv, 2 do [B·N, H·DH], 3 lse, 4 delta [B, H, N] (from attention_backward_dq).
// grid: (ceil(N/BK), H, B) workgroups of BK invocations, one key row each; query tiles of BQ rows.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint BK = 64;  // key rows per workgroup, one per invocation
layout(constant_id = 1) const uint BQ = 32;  // queries per shared-memory tile
layout(constant_id = 2) const uint DH = 64;  // head dim

#include "attention.glsl"

layout(std430, binding = 0) writeonly buffer DQKV { float dqkv[]; };
layout(std430, binding = 1) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 2) readonly buffer DO { float dout[]; };
layout(std430, binding = 3) readonly buffer LSE { float lse[]; };
layout(std430, binding = 4) readonly buffer Delta { float delta[]; };

shared float Qs[BQ * DH];
shared float Gs[BQ * DH];  // do rows
shared float Ls[BQ];       // lse in log2 units
shared float Ds[BQ];       // delta

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint k0 = gl_WorkGroupID.x * BK, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
    uint j = k0 + tid;
    bool live = j < p.n;

    float k[DH], v[DH], dk[DH], dv[DH];
    [[unroll]] for (uint d = 0; d < DH; ++d) {
        k[d] = live ? qkv[qkvAt(p.qkvOff, b, j, 1u, h, d)] * (p.scale * LOG2E) : 0.0;
        v[d] = live ? qkv[qkvAt(p.qkvOff, b, j, 2u, h, d)] : 0.0;
        dk[d] = 0.0;
        dv[d] = 0.0;
    }
    // Queries before the frame of this block's first key never see it: their tiles are skipped. Within
    // the remaining range, query i sees key j iff i ≥ frameStart(j).
    uint iBegin = frameStart(k0);
    uint colStart = live ? frameStart(j) : p.n;

    for (uint i0 = iBegin; i0 < p.n; i0 += BQ) {
        barrier();
        for (uint e = tid; e < BQ * DH; e += BK) {
            uint i = i0 + e / DH, d = e % DH;
            Qs[e] = i < p.n ? qkv[qkvAt(p.qkvOff, b, i, 0u, h, d)] : 0.0;
            Gs[e] = i < p.n ? dout[outAt(p.doOff, b, i, h, d)] : 0.0;
        }
        for (uint e = tid; e < BQ; e += BK) {
            uint i = i0 + e;
            Ls[e] = i < p.n ? lse[rowAt(p.lseOff, b, h, i)] * LOG2E : 0.0;
            Ds[e] = i < p.n ? delta[rowAt(p.deltaOff, b, h, i)] : 0.0;
        }
        barrier();
        // Queries of the tile that see this key: a suffix, because the mask is block-lower-triangular.
        uint iFirst = colStart > i0 ? colStart - i0 : 0u;
        uint iEnd = min(BQ, p.n - i0);
        for (uint r = iFirst; r < iEnd; ++r) {
            float s = 0.0, dp = 0.0;
            [[unroll]] for (uint d = 0; d < DH; ++d) {
                s += Qs[r * DH + d] * k[d];
                dp += Gs[r * DH + d] * v[d];
            }
            float pr = exp2(s - Ls[r]);
            float ds = pr * (dp - Ds[r]);
            [[unroll]] for (uint d = 0; d < DH; ++d) {
                dv[d] += pr * Gs[r * DH + d];
                dk[d] += ds * Qs[r * DH + d];
            }
        }
    }
    if (!live) return;
    [[unroll]] for (uint d = 0; d < DH; ++d) {
        dqkv[qkvAt(p.dqkvOff, b, j, 1u, h, d)] = dk[d] * p.scale;
        dqkv[qkvAt(p.dqkvOff, b, j, 2u, h, d)] = dv[d];
    }
}
