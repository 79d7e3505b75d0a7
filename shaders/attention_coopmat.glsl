// attention_coopmat.glsl: the main of attention.comp's COOPMAT variant: flash attention on 16×16×16
// fragments of coopmat.glsl (f16 q, k, v, P; f32 scores, statistics and output). Included by attention.comp
// after its bindings; COOPMAT_EMULATE builds the same code on the emulated fragments.
//
// Work split. A workgroup of WG/32 warps takes BR = 16·WG/32 query rows of one head; warp w owns rows
// 16w..16w+15 as DH/16 f16 fragments of q and DH/16 f32 fragments of o. Per key tile of BC rows (staged
// as f16 by the whole workgroup) a warp computes S = q·kᵀ into BC/16 fragments, stores them to its scratch,
// and its 32 lanes do the softmax there: lane l takes row l/2, columns (l%2)·BC/2.., reading the whole row
// for the max; it writes P as f16 over S and the warp adds P·v into o. Key tiles past the block's last
// visible key are skipped, as are the fragments past the last key any of the warp's rows sees; partly
// visible fragments are masked with P = 0 exactly.
//
// Statistics (f32, log2 units, row max m and per-lane half sums l): the o fragments cannot be scaled per
// row in registers, so the running max is moved lazily: it only moves when a tile's max exceeds it by more
// than RESCALE_LOG2 (P ≤ 2^RESCALE_LOG2 otherwise, harmless in f16 and f32), and then every warp stores o to
// its scratch, its lanes scale their rows and reload it. A shared flag makes that decision workgroup-uniform.
// o / l and lse = m·ln 2 + log l are exact whichever m was used.
//
// Shared memory (uvec4s): q rows [BR][HS] (only kept with COOP_LAZY_OPERANDS; on NV the q fragments are in
// registers and the k, v tiles reuse that space), k and v tiles [BC][HS], then per warp a scratch of 16 rows
// of SS uvec4s (S as f32, P as f16, o for rescaling and output). Rows are padded by 8 halves (4 floats),
// which keeps fragment rows 16-byte aligned. Mirrored by attnCoopShared in vk/attention.go.
#include "coopmat.glsl"

const uint WARPS = WG / 32u;
const uint BR = 16u * WARPS;
const uint FD = DH / 16u, FC = BC / 16u;
const uint HS = DH / 8u + 1u;                        // f16 head row stride
const uint SS = (BC > DH ? BC : DH) / 4u + 1u;       // f32 scratch row stride
const uint Q_BASE = 0u;
const uint K_BASE = COOP_LAZY_OPERANDS ? BR * HS : 0u;
const uint V_BASE = K_BASE + BC * HS;
const uint SCR_BASE = V_BASE + BC * HS;
const uint SMEM_WORDS = SCR_BASE + WARPS * 16u * SS > BR * HS ? SCR_BASE + WARPS * 16u * SS : BR * HS;
shared uvec4 smem[SMEM_WORDS];
shared float lHalf[BR * 2u];  // per-lane partial row sums, combined at the end
shared uint rescale;           // some row of the workgroup moves its max in this tile
#include "coopmat_emulate.glsl"

const float RESCALE_LOG2 = 8.0;

void main() {
    const uint tid = gl_LocalInvocationID.x, warp = COOP_WARP, lane = COOP_LANE;
    const uint q0 = gl_WorkGroupID.x * BR, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
    const uint r = lane / 2u, half_ = lane % 2u, i = q0 + 16u * warp + r;  // this lane's row
    const uint scr = SCR_BASE + warp * 16u * SS, rowScr = scr + r * SS;
    const float c2 = p.scale * LOG2E;  // scores in log2 units

    // Stage the block's q rows as f16 and load the warp's fragments.
    for (uint e = tid; e < BR * (DH / 8u); e += WG) {
        const uint row = e / (DH / 8u), c = 8u * (e % (DH / 8u)), iq = q0 + row;
        uvec4 w = uvec4(0u);
        if (iq < p.n) {
            const uint at = qkvAt(p.qkvOff, b, iq, 0u, h, 0u);
            w = f16x8(loadQKV(at, c), loadQKV(at, c + 4u));
        }
        smem[Q_BASE + row * HS + c / 8u] = w;
    }
    if (tid == 0u) rescale = 0u;
    barrier();
    FragA qf[FD];
    COOP_UNROLL for (uint d = 0u; d < FD; ++d) FRAG_LOAD(qf[d], Q_BASE + 16u * warp * HS + 2u * d, HS, false);
    FragAcc acc[FD];
    COOP_UNROLL for (uint d = 0u; d < FD; ++d) FRAG_ZERO(acc[d]);

    const uint rowEnd = i < p.n ? frameEnd(i) : 0u;  // one past the last key row i sees
    const uint warpRow = min(q0 + 16u * warp + 15u, p.n - 1u);
    const uint warpEnd = q0 + 16u * warp < p.n ? frameEnd(warpRow) : 0u;  // same, for the warp's last row
    // Keys past the last frame any row of this block sees are skipped, not masked.
    const uint kEnd = frameEnd(min(q0 + BR, p.n) - 1u);
    float m = -1.0 / 0.0, l = 0.0;  // row max (log2 units) and this lane's half of the row sum

    for (uint k0 = 0u; k0 < kEnd; k0 += BC) {
        barrier();
        for (uint e = tid; e < BC * (DH / 8u); e += WG) {
            const uint row = e / (DH / 8u), c = 8u * (e % (DH / 8u)), j = k0 + row;
            uvec4 kw = uvec4(0u), vw = uvec4(0u);
            if (j < kEnd) {
                const uint at = qkvAt(p.qkvOff, b, j, 1u, h, 0u), av = qkvAt(p.qkvOff, b, j, 2u, h, 0u);
                kw = f16x8(loadQKV(at, c), loadQKV(at, c + 4u));
                vw = f16x8(loadQKV(av, c), loadQKV(av, c + 4u));
            }
            smem[K_BASE + row * HS + c / 8u] = kw;
            smem[V_BASE + row * HS + c / 8u] = vw;
        }
        if (tid == 0u) rescale = 0u;  // every invocation read the last tile's flag before this tile's barrier
        barrier();

        // S = q·kᵀ for the key fragments some row of the warp sees; kᵀ is k read column-major.
        const uint fEnd = warpEnd > k0 ? min(FC, (warpEnd - k0 + 15u) / 16u) : 0u;
        COOP_UNROLL for (uint f = 0u; f < FC; ++f) {
            if (f < fEnd) {
                FragAcc s;
                FRAG_ZERO(s);
                COOP_UNROLL for (uint d = 0u; d < FD; ++d) {
                    FragA kf;
                    FRAG_LOAD(kf, K_BASE + 16u * f * HS + 2u * d, HS, true);
                    FRAG_MULADD(s, qf[d], kf);
                }
                FRAG_STORE(s, scr + 4u * f, SS);
            }
        }
        FRAG_SYNC();

        // Softmax statistics of row r over the whole tile; P for this lane's half, kept in registers.
        // Masked or skipped columns never reach max or P (their scratch may hold anything).
        float sv[BC / 2u];
        float mt = m;
        [[unroll]] for (uint q = 0u; q < BC / 4u; ++q) {
            const vec4 x = uintBitsToFloat(smem[rowScr + q]) * c2;
            [[unroll]] for (uint t = 0u; t < 4u; ++t) {
                const uint col = 4u * q + t;
                if (k0 + col < rowEnd) mt = max(mt, x[t]);
                if (col / (BC / 2u) == half_) sv[col % (BC / 2u)] = x[t];
            }
        }
        float corr = 1.0;
        if (m == -1.0 / 0.0) {
            m = mt;  // the first visible keys set m: o and l are still 0
        } else if (mt > m + RESCALE_LOG2) {
            corr = exp2(m - mt);
            m = mt;
            l *= corr;
            atomicOr(rescale, 1u);
        }
        [[unroll]] for (uint t = 0u; t < BC / 2u; ++t) {
            // Masked pairs get P = 0 exactly: for finite inputs o does not depend on the hidden keys (spec §3).
            sv[t] = k0 + half_ * (BC / 2u) + t < rowEnd ? exp2(sv[t] - m) : 0.0;
            l += sv[t];
        }
        barrier();  // every lane has read its row of S and set the flag

        if (rescale != 0u) {
            COOP_UNROLL for (uint d = 0u; d < FD; ++d) FRAG_STORE(acc[d], scr + 4u * d, SS);
            FRAG_SYNC();
            [[unroll]] for (uint q = 0u; q < DH / 8u; ++q) {
                const uint at = rowScr + half_ * (DH / 8u) + q;
                smem[at] = floatBitsToUint(uintBitsToFloat(smem[at]) * corr);
            }
            FRAG_SYNC();
            COOP_UNROLL for (uint d = 0u; d < FD; ++d) FRAG_LOAD_ACC(acc[d], scr + 4u * d, SS);
            FRAG_SYNC();
        }
        [[unroll]] for (uint q = 0u; q < BC / 16u; ++q) {
            const uint t = 8u * q;
            smem[rowScr + half_ * (BC / 16u) + q] = f16x8(vec4(sv[t], sv[t + 1u], sv[t + 2u], sv[t + 3u]),
                                                           vec4(sv[t + 4u], sv[t + 5u], sv[t + 6u], sv[t + 7u]));
        }
        FRAG_SYNC();

        // o += P·v over the same fragments (P is 0 past fEnd).
        COOP_UNROLL for (uint f = 0u; f < FC; ++f) {
            if (f < fEnd) {
                FragA pf;
                FRAG_LOAD(pf, scr + 2u * f, SS, false);
                COOP_UNROLL for (uint d = 0u; d < FD; ++d) {
                    FragA vf;
                    FRAG_LOAD(vf, V_BASE + 16u * f * HS + 2u * d, HS, false);
                    FRAG_MULADD(acc[d], pf, vf);
                }
            }
        }
    }

    // Row sums from both halves; o / l through the scratch, each lane writing its half row.
    lHalf[16u * 2u * warp + lane] = l;
    FRAG_SYNC();
    l += lHalf[16u * 2u * warp + (lane ^ 1u)];
    COOP_UNROLL for (uint d = 0u; d < FD; ++d) FRAG_STORE(acc[d], scr + 4u * d, SS);
    FRAG_SYNC();
    if (i < p.n) {
        const float inv = 1.0 / l;
        const uint at = outAt(p.oOff, b, i, h, 0u);
        [[unroll]] for (uint q = 0u; q < DH / 8u; ++q) {
            const uint c = half_ * (DH / 8u) + q;
            storeO(at, 4u * c, uintBitsToFloat(smem[rowScr + c]) * inv);
        }
        if (half_ == 0u) lse[rowAt(p.lseOff, b, h, i)] = m * LN2 + log(l);
    }
}
