#version 450
// gemm: C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b] + bias, f32 accumulation; A, B f32/f16/bf16 (A_F16, ...);
// LOWRANK: + lowAlpha·keep⊙(U·op(V)), a fused LoRA path; ELEMENTWISE: then a residual add, GELU or GELU's
// backward on the result (gemm.glsl).
// bindings: 0 A [m,k] or [k,m], 1 B [k,n] or [n,k], 2 C [m,n] f32 (or split-K workspace), 3 bias [n] f32;
// LOWRANK: 4 U [m,r] f32, 5 V [r,n] or [n,r] f32, 6 dropout seed [1]; ELEMENTWISE: 7 E [m,n] f32;
// MASKED: 4 dropout seed [1]. CPU: A, B, U, V as texel buffers with word-buffer twins (gemm_cpu.glsl).
// grid: (ceil(n/BN), ceil(m/BM), batch·splits) workgroups of WG invocations (spec constant 0); CPU:
// (ceil(m/MT), ceil(n/NT), batch·splits) workgroups of one subgroup.
#include "common.glsl"
#include "gemm.glsl"

#if defined(CPU)
#include "gemm_cpu.glsl"
#elif defined(COOPMAT)
#include "gemm_coopmat.glsl"
#else

// Shared-memory tiled scalar path, for every device. A workgroup computes a BM×BN tile of C; invocation
// (ty, tx) owns the TM×TN block at rows ty·TM.., columns tx·TN... Per K step it reads its TM values of A and
// TN values of B as vec4s: CPU drivers (lavapipe) gather every shared-memory read lane by lane, so four
// floats per read, and TM·TN FMAs per TM+TN floats, are what make that path fast.
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256; // must equal (BM/TM)·(BN/TN)
layout(constant_id = 1) const uint BM = 128;
layout(constant_id = 2) const uint BN = 128;
layout(constant_id = 3) const uint BK = 16;  // BM·BK and BK·BN must be multiples of WG
layout(constant_id = 4) const uint TM = 8;   // multiple of 4
layout(constant_id = 5) const uint TN = 8;   // multiple of 4
const uint TX = BN / TN;
// Tiles are k-major (As[kk][mm], Bs[kk][nn]) in vec4s, each K row padded by one vec4 so that staging
// along K (A as stored [m,k], B as [n,k]) spreads over shared-memory banks.
const uint RA = BM / 4 + 1;
const uint RB = BN / 4 + 1;
shared vec4 As[BK * RA];
shared vec4 Bs[BK * RB];

// Per invocation: its TM×TN accumulators and place in the tile (set once by main).
float acc[TM * TN];
uint tid, tx, ty;

// multiplyStaged adds the staged BK-deep tiles' product to acc.
void multiplyStaged() {
    [[dont_unroll]] for (uint kk = 0; kk < BK; kk++) {
        vec4 av[TM / 4], bv[TN / 4];
        [[unroll]] for (uint i = 0; i < TM / 4; i++) av[i] = As[kk * RA + ty * (TM / 4) + i];
        [[unroll]] for (uint j = 0; j < TN / 4; j++) bv[j] = Bs[kk * RB + tx * (TN / 4) + j];
        [[unroll]] for (uint i = 0; i < TM; i++)
            [[unroll]] for (uint j = 0; j < TN; j++) acc[i * TN + j] = fma(av[i / 4][i % 4], bv[j / 4][j % 4], acc[i * TN + j]);
    }
}

#if defined(LOWRANK) && !defined(LOWRANK_EPILOGUE)
// lowRankFirst puts the low-rank term into acc, scaled so that storeC's alpha·acc gives lowAlpha·term,
// before the main loop adds the base product: the term goes through the shared tiles like K steps of U
// and V (as loads of a K-deep product cost per FMA, not 2·rank loads per element as lowRankAt's), and
// the dropout mask, applying to the term alone, can still be applied to it.
void lowRankFirst(uint m0, uint n0) {
    if (p.rank == 0u) return; // an ELEMENTWISE product without a term
    const bool transV = (p.flags & GEMM_LOWRANK_TRANS_V) != 0u;
    for (uint k0 = 0; k0 < p.rank; k0 += BK) {
        [[dont_unroll]] for (uint r = 0; r < BM * BK / WG; r++) {
            const uint i = r * WG + tid;
            const uint mm = i / BK, kk = i % BK, gm = m0 + mm, gk = k0 + kk;
            As[kk * RA + mm / 4][mm % 4] = gm < p.m && gk < p.rank ? lowU[p.offU + gm * p.ldu + gk] : 0.0;
        }
        [[dont_unroll]] for (uint r = 0; r < BK * BN / WG; r++) {
            const uint i = r * WG + tid;
            const uint nn = transV ? i / BK : i % BN, kk = transV ? i % BK : i / BN;
            const uint gn = n0 + nn, gk = k0 + kk;
            float v = 0.0;
            if (gn < p.n && gk < p.rank) v = lowV[p.offV + (transV ? gn * p.ldv + gk : gk * p.ldv + gn)];
            Bs[kk * RB + nn / 4][nn % 4] = v;
        }
        barrier();
        multiplyStaged();
        barrier();
    }
    const float f = p.lowAlpha / p.alpha;
    if ((p.flags & GEMM_LOWRANK_MASK) == 0u) {
        [[unroll]] for (uint i = 0; i < TM * TN; i++) acc[i] *= f;
        return;
    }
    // Row by row with the rows rotated through acc[0..TN), as the store loop, to keep indices constant.
    [[dont_unroll]] for (uint i = 0; i < TM; i++) {
        const uint row = m0 + ty * TM + i;
        float first[TN];
        [[unroll]] for (uint j = 0; j < TN; j++) {
            const uint col = n0 + tx * TN + j;
            // A select, not a multiply by the mask: a dropped element is 0 even when the term is not finite.
            first[j] = dropoutKeep(maskSeed[0], p.maskSalt, p.maskFirst + row * p.maskLd + col, p.maskThreshold) ? acc[j] * f : 0.0;
        }
        [[unroll]] for (uint r = 0; r < TM - 1; r++)
            [[unroll]] for (uint j = 0; j < TN; j++) acc[r * TN + j] = acc[(r + 1) * TN + j];
        [[unroll]] for (uint j = 0; j < TN; j++) acc[(TM - 1) * TN + j] = first[j];
    }
}
#endif

void main() {
    tid = gl_LocalInvocationID.x;
    tx = tid % TX;
    ty = tid / TX;
    const uint batch = gl_WorkGroupID.z / p.splits, slice = gl_WorkGroupID.z % p.splits;
    const uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    const uint kBegin = slice * p.kSplit, kEnd = min(p.k, kBegin + p.kSplit);
    const uint baseA = p.offA + batch * p.sa, baseB = p.offB + batch * p.sb;
    const bool transA = (p.flags & GEMM_TRANS_A) != 0u, transB = (p.flags & GEMM_TRANS_B) != 0u;

    [[unroll]] for (uint i = 0; i < TM * TN; i++) acc[i] = 0.0;
#if defined(LOWRANK) && !defined(LOWRANK_EPILOGUE)
    lowRankFirst(m0, n0);
#endif

    for (uint k0 = kBegin; k0 < kEnd; k0 += BK) {
        // Consecutive invocations load consecutive addresses of the stored layout.
        [[dont_unroll]] for (uint r = 0; r < BM * BK / WG; r++) {
            const uint i = r * WG + tid;
            const uint mm = transA ? i % BM : i / BK, kk = transA ? i / BM : i % BK;
            const uint gm = m0 + mm, gk = k0 + kk;
            float v = 0.0;
            if (gm < p.m && gk < kEnd) v = loadA(baseA + (transA ? gk * p.lda + gm : gm * p.lda + gk));
            As[kk * RA + mm / 4][mm % 4] = v;
        }
        [[dont_unroll]] for (uint r = 0; r < BK * BN / WG; r++) {
            const uint i = r * WG + tid;
            const uint nn = transB ? i / BK : i % BN, kk = transB ? i % BK : i / BN;
            const uint gn = n0 + nn, gk = k0 + kk;
            float v = 0.0;
            if (gn < p.n && gk < kEnd) v = loadB(baseB + (transB ? gn * p.ldb + gk : gk * p.ldb + gn));
            Bs[kk * RB + nn / 4][nn % 4] = v;
        }
        barrier();
        multiplyStaged();
        barrier();
    }

    // Row by row, shifting the next row into acc[0..TN): indices stay constant without unrolling TM·TN
    // stores, which on lavapipe would multiply compile time several-fold.
    [[dont_unroll]] for (uint i = 0; i < TM; i++) {
        const uint row = m0 + ty * TM + i;
        if (row >= p.m) break;
        [[unroll]] for (uint j = 0; j < TN; j++) {
            const uint col = n0 + tx * TN + j;
            if (col < p.n) storeC(batch, slice, row, col, acc[j]);
        }
        [[unroll]] for (uint r = 0; r < TM - 1; r++)
            [[unroll]] for (uint j = 0; j < TN; j++) acc[r * TN + j] = acc[(r + 1) * TN + j];
    }
}
#endif
