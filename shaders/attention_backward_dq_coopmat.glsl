// attention_backward_dq_coopmat.glsl: the main of attention_backward_dq.comp's COOPMAT variant: Δ and dq on
// 16×16×16 fragments of coopmat.glsl (f16 q, k, v, do, dS; f32 S, dP, P, Δ and dq). Included by
// attention_backward_dq.comp after its bindings; COOPMAT_EMULATE builds the same code on the emulated
// fragments.
//
// Work split as in attention_coopmat.glsl: WG/32 warps, warp w owning query rows 16w..16w+15 of the block
// as DH/16 f16 fragments of q and of do and DH/16 f32 fragments of dq. Per key tile of BC rows a warp
// computes S = q·kᵀ and dP = do·vᵀ into its scratch; lane l takes row l/2, columns (l%2)·BC/2.., and forms
// dS = P∘(dP − Δ) with P = exp2(S·scale·log2 e − lse·log2 e) (exactly 0 where masked); dS goes as f16
// over S, and the warp adds dS·k into dq. Δ_i = do_i·o_i comes first, in f32, each lane summing half a row.
// Tiles and fragments no row sees are skipped as in the forward kernel.
//
// Shared memory (uvec4s): q and do rows [BR][HS] each (only kept with COOP_LAZY_OPERANDS; on NV they are
// in registers and the tiles reuse the space), k and v tiles [BC][HS], then per warp 16 scratch rows of SS
// (S, dS as f16, dq at the end) and 16 of SP (dP). Mirrored by attnCoopShared in vk/attention.go.
#include "coopmat.glsl"

const uint WARPS = WG / 32u;
const uint BR = 16u * WARPS;
const uint FD = DH / 16u, FC = BC / 16u;
const uint HS = DH / 8u + 1u;                   // f16 head row stride
const uint SS = (BC > DH ? BC : DH) / 4u + 1u;  // f32 row stride of the S / dS / dq scratch
const uint SP = BC / 4u + 1u;                   // f32 row stride of the dP scratch
const uint Q_BASE = 0u, G_BASE = BR * HS, KEEP = 2u * BR * HS;
const uint K_BASE = COOP_LAZY_OPERANDS ? KEEP : 0u;
const uint V_BASE = K_BASE + BC * HS;
const uint S_BASE = V_BASE + BC * HS;
const uint P_BASE = S_BASE + WARPS * 16u * SS;
const uint SMEM_END = P_BASE + WARPS * 16u * SP;
shared uvec4 smem[SMEM_END > KEEP ? SMEM_END : KEEP];
shared float dHalf[BR * 2u];  // per-lane halves of Δ
#include "coopmat_emulate.glsl"

void main() {
    const uint tid = gl_LocalInvocationID.x, warp = COOP_WARP, lane = COOP_LANE;
    const uint q0 = gl_WorkGroupID.x * BR, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
    const uint r = lane / 2u, half_ = lane % 2u, i = q0 + 16u * warp + r;  // this lane's row
    const uint sScr = S_BASE + warp * 16u * SS, rowS = sScr + r * SS;
    const uint pScr = P_BASE + warp * 16u * SP, rowP = pScr + r * SP;
    const float c2 = p.scale * LOG2E;

    // Stage the block's q and do rows as f16.
    for (uint e = tid; e < BR * (DH / 8u); e += WG) {
        const uint row = e / (DH / 8u), c = 8u * (e % (DH / 8u)), iq = q0 + row;
        uvec4 qw = uvec4(0u), gw = uvec4(0u);
        if (iq < p.n) {
            const uint aq = qkvAt(p.qkvOff, b, iq, 0u, h, 0u), ag = outAt(p.doOff, b, iq, h, 0u);
            qw = f16x8(loadQKV(aq, c), loadQKV(aq, c + 4u));
            gw = f16x8(loadDO(ag, c), loadDO(ag, c + 4u));
        }
        smem[Q_BASE + row * HS + c / 8u] = qw;
        smem[G_BASE + row * HS + c / 8u] = gw;
    }
    // Δ_i = do_i·o_i in f32 from the stored rows, this lane's half.
    float dlt = 0.0;
    if (i < p.n) {
        const uint ao = outAt(p.oOff, b, i, h, 0u), ag = outAt(p.doOff, b, i, h, 0u);
        [[unroll]] for (uint q = 0u; q < DH / 8u; ++q) {
            const uint c = half_ * (DH / 2u) + 4u * q;
            dlt += dot(loadDO(ag, c), loadO(ao, c));
        }
    }
    dHalf[32u * warp + lane] = dlt;
    const float lse2 = i < p.n ? lse[rowAt(p.lseOff, b, h, i)] * LOG2E : 0.0;
    barrier();
    dlt += dHalf[32u * warp + (lane ^ 1u)];
    if (i < p.n && half_ == 0u) delta[rowAt(p.deltaOff, b, h, i)] = dlt;
    FragA qf[FD], gf[FD];
    COOP_UNROLL for (uint d = 0u; d < FD; ++d) {
        FRAG_LOAD(qf[d], Q_BASE + 16u * warp * HS + 2u * d, HS, false);
        FRAG_LOAD(gf[d], G_BASE + 16u * warp * HS + 2u * d, HS, false);
    }
    FragAcc acc[FD];
    COOP_UNROLL for (uint d = 0u; d < FD; ++d) FRAG_ZERO(acc[d]);

    const uint rowEnd = i < p.n ? frameEnd(i) : 0u;
    const uint warpRow = min(q0 + 16u * warp + 15u, p.n - 1u);
    const uint warpEnd = q0 + 16u * warp < p.n ? frameEnd(warpRow) : 0u;
    const uint kEnd = frameEnd(min(q0 + BR, p.n) - 1u);

    for (uint k0 = 0u; k0 < kEnd; k0 += BC) {
        barrier();
        for (uint e = tid; e < BC * (DH / 8u); e += WG) {
            const uint row = e / (DH / 8u), c = 8u * (e % (DH / 8u)), j = k0 + row;
            uvec4 kw = uvec4(0u), vw = uvec4(0u);
            if (j < kEnd) {
                const uint ak = qkvAt(p.qkvOff, b, j, 1u, h, 0u), av = qkvAt(p.qkvOff, b, j, 2u, h, 0u);
                kw = f16x8(loadQKV(ak, c), loadQKV(ak, c + 4u));
                vw = f16x8(loadQKV(av, c), loadQKV(av, c + 4u));
            }
            smem[K_BASE + row * HS + c / 8u] = kw;
            smem[V_BASE + row * HS + c / 8u] = vw;
        }
        barrier();

        // S = q·kᵀ and dP = do·vᵀ (kᵀ, vᵀ: k, v read column-major) for the fragments the warp sees.
        const uint fEnd = warpEnd > k0 ? min(FC, (warpEnd - k0 + 15u) / 16u) : 0u;
        COOP_UNROLL for (uint f = 0u; f < FC; ++f) {
            if (f < fEnd) {
                FragAcc s, dp;
                FRAG_ZERO(s);
                FRAG_ZERO(dp);
                COOP_UNROLL for (uint d = 0u; d < FD; ++d) {
                    FragA kf, vf;
                    FRAG_LOAD(kf, K_BASE + 16u * f * HS + 2u * d, HS, true);
                    FRAG_LOAD(vf, V_BASE + 16u * f * HS + 2u * d, HS, true);
                    FRAG_MULADD(s, qf[d], kf);
                    FRAG_MULADD(dp, gf[d], vf);
                }
                FRAG_STORE(s, sScr + 4u * f, SS);
                FRAG_STORE(dp, pScr + 4u * f, SP);
            }
        }
        FRAG_SYNC();

        // dS_ij = P_ij (dP_ij − Δ_i), exactly 0 for masked or skipped pairs (whose scratch may hold anything).
        float ds[BC / 2u];
        [[unroll]] for (uint q = 0u; q < BC / 8u; ++q) {
            const vec4 x = uintBitsToFloat(smem[rowS + half_ * (BC / 8u) + q]);
            const vec4 y = uintBitsToFloat(smem[rowP + half_ * (BC / 8u) + q]);
            [[unroll]] for (uint t = 0u; t < 4u; ++t) {
                const bool seen = k0 + half_ * (BC / 2u) + 4u * q + t < rowEnd;
                ds[4u * q + t] = seen ? exp2(x[t] * c2 - lse2) * (y[t] - dlt) : 0.0;
            }
        }
        FRAG_SYNC();  // every lane has read its S before dS overwrites it
        [[unroll]] for (uint q = 0u; q < BC / 16u; ++q) {
            const uint t = 8u * q;
            smem[rowS + half_ * (BC / 16u) + q] = f16x8(vec4(ds[t], ds[t + 1u], ds[t + 2u], ds[t + 3u]),
                                                         vec4(ds[t + 4u], ds[t + 5u], ds[t + 6u], ds[t + 7u]));
        }
        FRAG_SYNC();

        // dq += dS·k.
        COOP_UNROLL for (uint f = 0u; f < FC; ++f) {
            if (f < fEnd) {
                FragA dsf;
                FRAG_LOAD(dsf, sScr + 2u * f, SS, false);
                COOP_UNROLL for (uint d = 0u; d < FD; ++d) {
                    FragA kf;
                    FRAG_LOAD(kf, K_BASE + 16u * f * HS + 2u * d, HS, false);
                    FRAG_MULADD(acc[d], dsf, kf);
                }
            }
        }
    }

    FRAG_SYNC();  // the warp's last dS loads are done before dq overwrites the scratch
    COOP_UNROLL for (uint d = 0u; d < FD; ++d) FRAG_STORE(acc[d], sScr + 4u * d, SS);
    FRAG_SYNC();
    if (i < p.n) {
        const uint at = qkvAt(p.dqkvOff, b, i, 0u, h, 0u);
        [[unroll]] for (uint q = 0u; q < DH / 8u; ++q) {
            const uint c = half_ * (DH / 8u) + q;
            storeDQKV(at, 4u * c, uintBitsToFloat(smem[rowS + c]) * p.scale);
        }
    }
}
