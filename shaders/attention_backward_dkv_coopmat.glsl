// attention_backward_dkv_coopmat.glsl: the main of attention_backward_dkv.comp's COOPMAT variant: dk and dv
// on 16×16×16 fragments of coopmat.glsl (f16 q, k, v, do, Pᵀ, dSᵀ; f32 Sᵀ, dPᵀ, dk, dv). Included by
// attention_backward_dkv.comp after its bindings; COOPMAT_EMULATE builds the same code on the emulated
// fragments.
//
// Work split: WG/32 warps take BK = 16·WG/32 keys of one head; warp w owns keys 16w..16w+15 as DH/16 f16
// fragments of k and of v and DH/16 f32 fragments of dk and of dv. Per query tile of BQ rows (q and do
// staged as f16, lse and Δ as f32) a warp computes Sᵀ = k·qᵀ and dPᵀ = v·doᵀ into its scratch; lane l
// takes key l/2, queries (l%2)·BQ/2.., and forms Pᵀ = exp2(Sᵀ·scale·log2 e − lse·log2 e) and
// dSᵀ = Pᵀ∘(dPᵀ − Δ) (exactly 0 where masked), written as f16 over Sᵀ and dPᵀ; the warp adds Pᵀ·do into dv
// and dSᵀ·q into dk. Query tiles before the block's first frame are skipped, as are the fragments of
// queries before the warp's first frame.
//
// Shared memory (uvec4s): k and v rows [BK][HS] each (only kept with COOP_LAZY_OPERANDS; on NV they are in
// registers and the tiles reuse the space), q and do tiles [BQ][HS], then per warp 16 scratch rows of SS
// (Sᵀ, Pᵀ as f16, then dk and dv in turn) and 16 of SP (dPᵀ, dSᵀ as f16); (lse, Δ) of the tile's queries in
// LD. Mirrored by attnCoopShared in vk/attention.go.
#include "coopmat.glsl"

const uint WARPS = WG / 32u;
const uint BK = 16u * WARPS;
const uint FD = DH / 16u, FQ = BQ / 16u;
const uint HS = DH / 8u + 1u;                   // f16 head row stride
const uint SS = (BQ > DH ? BQ : DH) / 4u + 1u;  // f32 row stride of the Sᵀ / Pᵀ / dk / dv scratch
const uint SP = BQ / 4u + 1u;                   // f32 row stride of the dPᵀ / dSᵀ scratch
const uint K_BASE = 0u, V_BASE = BK * HS, KEEP = 2u * BK * HS;
const uint Q_BASE = COOP_LAZY_OPERANDS ? KEEP : 0u;
const uint G_BASE = Q_BASE + BQ * HS;
const uint S_BASE = G_BASE + BQ * HS;
const uint P_BASE = S_BASE + WARPS * 16u * SS;
const uint SMEM_END = P_BASE + WARPS * 16u * SP;
shared uvec4 smem[SMEM_END > KEEP ? SMEM_END : KEEP];
shared vec2 LD[BQ];  // (lse in log2 units, Δ) of the tile's queries
#include "coopmat_emulate.glsl"

void main() {
    const uint tid = gl_LocalInvocationID.x, warp = COOP_WARP, lane = COOP_LANE;
    const uint k0 = gl_WorkGroupID.x * BK, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
    const uint r = lane / 2u, half_ = lane % 2u, j = k0 + 16u * warp + r;  // this lane's key
    const uint sScr = S_BASE + warp * 16u * SS, rowS = sScr + r * SS;
    const uint pScr = P_BASE + warp * 16u * SP, rowP = pScr + r * SP;
    const float c2 = p.scale * LOG2E;

    // Stage the block's k and v rows as f16 and load the warp's fragments.
    for (uint e = tid; e < BK * (DH / 8u); e += WG) {
        const uint row = e / (DH / 8u), c = 8u * (e % (DH / 8u)), jk = k0 + row;
        uvec4 kw = uvec4(0u), vw = uvec4(0u);
        if (jk < p.n) {
            const uint ak = qkvAt(p.qkvOff, b, jk, 1u, h, 0u), av = qkvAt(p.qkvOff, b, jk, 2u, h, 0u);
            kw = f16x8(loadQKV(ak, c), loadQKV(ak, c + 4u));
            vw = f16x8(loadQKV(av, c), loadQKV(av, c + 4u));
        }
        smem[K_BASE + row * HS + c / 8u] = kw;
        smem[V_BASE + row * HS + c / 8u] = vw;
    }
    barrier();
    FragA kf[FD], vf[FD];
    COOP_UNROLL for (uint d = 0u; d < FD; ++d) {
        FRAG_LOAD(kf[d], K_BASE + 16u * warp * HS + 2u * d, HS, false);
        FRAG_LOAD(vf[d], V_BASE + 16u * warp * HS + 2u * d, HS, false);
    }
    FragAcc dk[FD], dv[FD];
    COOP_UNROLL for (uint d = 0u; d < FD; ++d) {
        FRAG_ZERO(dk[d]);
        FRAG_ZERO(dv[d]);
    }

    const uint colStart = j < p.n ? frameStart(j) : p.n;  // first query that sees key j
    const uint warpStart = k0 + 16u * warp < p.n ? frameStart(k0 + 16u * warp) : p.n;  // same, warp's first key

    // Queries before the frame of this block's first key never see it: their tiles are skipped.
    for (uint i0 = frameStart(k0); i0 < p.n; i0 += BQ) {
        barrier();
        for (uint e = tid; e < BQ * (DH / 8u); e += WG) {
            const uint row = e / (DH / 8u), c = 8u * (e % (DH / 8u)), i = i0 + row;
            uvec4 qw = uvec4(0u), gw = uvec4(0u);
            if (i < p.n) {
                const uint aq = qkvAt(p.qkvOff, b, i, 0u, h, 0u), ag = outAt(p.doOff, b, i, h, 0u);
                qw = f16x8(loadQKV(aq, c), loadQKV(aq, c + 4u));
                gw = f16x8(loadDO(ag, c), loadDO(ag, c + 4u));
            }
            smem[Q_BASE + row * HS + c / 8u] = qw;
            smem[G_BASE + row * HS + c / 8u] = gw;
        }
        for (uint e = tid; e < BQ; e += WG) {
            const uint i = i0 + e;
            LD[e] = i < p.n ? vec2(lse[rowAt(p.lseOff, b, h, i)] * LOG2E, delta[rowAt(p.deltaOff, b, h, i)]) : vec2(0.0);
        }
        barrier();

        // Sᵀ = k·qᵀ and dPᵀ = v·doᵀ (qᵀ, doᵀ: q, do read column-major) for the fragments the warp's keys see.
        const uint fFirst = warpStart > i0 ? min(FQ, (warpStart - i0) / 16u) : 0u;
        COOP_UNROLL for (uint f = 0u; f < FQ; ++f) {
            if (f >= fFirst) {
                FragAcc st, dpt;
                FRAG_ZERO(st);
                FRAG_ZERO(dpt);
                COOP_UNROLL for (uint d = 0u; d < FD; ++d) {
                    FragA qt, gt;
                    FRAG_LOAD(qt, Q_BASE + 16u * f * HS + 2u * d, HS, true);
                    FRAG_LOAD(gt, G_BASE + 16u * f * HS + 2u * d, HS, true);
                    FRAG_MULADD(st, kf[d], qt);
                    FRAG_MULADD(dpt, vf[d], gt);
                }
                FRAG_STORE(st, sScr + 4u * f, SS);
                FRAG_STORE(dpt, pScr + 4u * f, SP);
            }
        }
        FRAG_SYNC();

        // Pᵀ and dSᵀ, exactly 0 for masked or skipped pairs (whose scratch may hold anything).
        float pt[BQ / 2u], dst[BQ / 2u];
        [[unroll]] for (uint q = 0u; q < BQ / 8u; ++q) {
            const vec4 x = uintBitsToFloat(smem[rowS + half_ * (BQ / 8u) + q]);
            const vec4 y = uintBitsToFloat(smem[rowP + half_ * (BQ / 8u) + q]);
            [[unroll]] for (uint t = 0u; t < 4u; ++t) {
                const uint col = half_ * (BQ / 2u) + 4u * q + t, i = i0 + col;
                const vec2 ld = LD[col];
                const bool seen = i >= colStart && i < p.n;
                const float pr = seen ? exp2(x[t] * c2 - ld.x) : 0.0;
                pt[4u * q + t] = pr;
                dst[4u * q + t] = seen ? pr * (y[t] - ld.y) : 0.0;
            }
        }
        FRAG_SYNC();  // every lane has read its Sᵀ and dPᵀ before the f16 values overwrite them
        [[unroll]] for (uint q = 0u; q < BQ / 16u; ++q) {
            const uint t = 8u * q;
            smem[rowS + half_ * (BQ / 16u) + q] = f16x8(vec4(pt[t], pt[t + 1u], pt[t + 2u], pt[t + 3u]),
                                                         vec4(pt[t + 4u], pt[t + 5u], pt[t + 6u], pt[t + 7u]));
            smem[rowP + half_ * (BQ / 16u) + q] = f16x8(vec4(dst[t], dst[t + 1u], dst[t + 2u], dst[t + 3u]),
                                                         vec4(dst[t + 4u], dst[t + 5u], dst[t + 6u], dst[t + 7u]));
        }
        FRAG_SYNC();

        // dv += Pᵀ·do, dk += dSᵀ·q.
        COOP_UNROLL for (uint f = 0u; f < FQ; ++f) {
            if (f >= fFirst) {
                FragA pf, dsf;
                FRAG_LOAD(pf, sScr + 2u * f, SS, false);
                FRAG_LOAD(dsf, pScr + 2u * f, SP, false);
                COOP_UNROLL for (uint d = 0u; d < FD; ++d) {
                    FragA gf, qf;
                    FRAG_LOAD(gf, G_BASE + 16u * f * HS + 2u * d, HS, false);
                    FRAG_LOAD(qf, Q_BASE + 16u * f * HS + 2u * d, HS, false);
                    FRAG_MULADD(dv[d], pf, gf);
                    FRAG_MULADD(dk[d], dsf, qf);
                }
            }
        }
    }

    // dk then dv through the scratch, each lane writing its half row.
    const uint ak = qkvAt(p.dqkvOff, b, j, 1u, h, 0u), av = qkvAt(p.dqkvOff, b, j, 2u, h, 0u);
    FRAG_SYNC();  // the warp's last Pᵀ loads are done before dk overwrites the scratch
    COOP_UNROLL for (uint d = 0u; d < FD; ++d) FRAG_STORE(dk[d], sScr + 4u * d, SS);
    FRAG_SYNC();
    if (j < p.n) {
        [[unroll]] for (uint q = 0u; q < DH / 8u; ++q) {
            const uint c = half_ * (DH / 8u) + q;
            storeDQKV(ak, 4u * c, uintBitsToFloat(smem[rowS + c]) * p.scale);
        }
    }
    FRAG_SYNC();
    COOP_UNROLL for (uint d = 0u; d < FD; ++d) FRAG_STORE(dv[d], sScr + 4u * d, SS);
    FRAG_SYNC();
    if (j < p.n) {
        [[unroll]] for (uint q = 0u; q < DH / 8u; ++q) {
            const uint c = half_ * (DH / 8u) + q;
            storeDQKV(av, 4u * c, uintBitsToFloat(smem[rowS + c]));
        }
    }
}
