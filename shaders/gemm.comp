#version 450
// gemm: C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b] + bias, f32 accumulation; A, B f32/f16/bf16 (A_F16, ...).
// bindings: 0 A [m,k] or [k,m], 1 B [k,n] or [n,k], 2 C [m,n] f32 (or split-K workspace), 3 bias [n] f32.
// grid: (ceil(n/BN), ceil(m/BM), batch·splits); scalar: WG = (BM/TM)·(BN/TN) invocations, COOPMAT: WG.
#include "common.glsl"
#include "gemm.glsl"

#ifdef COOPMAT
#include "gemm_coopmat.glsl"
#else

// Shared-memory tiled scalar path, for every device. Each invocation owns a TM×TN block of C whose rows
// are TY apart and columns TX apart, so that neighbouring invocations touch neighbouring columns (coalesced
// global stores, conflict-free shared reads).
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256; // must equal (BM/TM)·(BN/TN)
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 16;  // BM·BK and BK·BN must be multiples of WG
layout(constant_id = 4) const uint TM = 4;
layout(constant_id = 5) const uint TN = 4;
const uint TX = BN / TN;
const uint TY = BM / TM;

// Tiles are k-major (As[kk][mm], Bs[kk][nn]) so that the inner product reads both along rows.
shared float As[BK * BM];
shared float Bs[BK * BN];

void main() {
    const uint tid = gl_LocalInvocationID.x;
    // With TY == 1 (or TX == 1) every invocation reads the same A (or B) element at each step; spelling
    // the index without tid lets CPU drivers (lavapipe) load it once for all SIMD lanes instead of per lane.
    const uint tx = TX == 1 ? 0 : tid % TX, ty = TY == 1 ? 0 : tid / TX;
    const uint batch = gl_WorkGroupID.z / p.splits, slice = gl_WorkGroupID.z % p.splits;
    const uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    const uint kBegin = slice * p.kSplit, kEnd = min(p.k, kBegin + p.kSplit);
    const uint baseA = p.offA + batch * p.sa, baseB = p.offB + batch * p.sb;
    const bool transA = (p.flags & GEMM_TRANS_A) != 0u, transB = (p.flags & GEMM_TRANS_B) != 0u;

    float acc[TM * TN];
    [[unroll]] for (uint i = 0; i < TM * TN; i++) acc[i] = 0.0;

    for (uint k0 = kBegin; k0 < kEnd; k0 += BK) {
        // Consecutive invocations load consecutive addresses of the stored layout.
        [[unroll]] for (uint r = 0; r < BM * BK / WG; r++) {
            const uint i = r * WG + tid;
            const uint mm = transA ? i % BM : i / BK, kk = transA ? i / BM : i % BK;
            const uint gm = m0 + mm, gk = k0 + kk;
            float v = 0.0;
            if (gm < p.m && gk < kEnd) v = loadA(baseA + (transA ? gk * p.lda + gm : gm * p.lda + gk));
            As[kk * BM + mm] = v;
        }
        [[unroll]] for (uint r = 0; r < BK * BN / WG; r++) {
            const uint i = r * WG + tid;
            const uint nn = transB ? i / BK : i % BN, kk = transB ? i % BK : i / BN;
            const uint gn = n0 + nn, gk = k0 + kk;
            float v = 0.0;
            if (gn < p.n && gk < kEnd) v = loadB(baseB + (transB ? gn * p.ldb + gk : gk * p.ldb + gn));
            Bs[kk * BN + nn] = v;
        }
        barrier();
        [[unroll]] for (uint kk = 0; kk < BK; kk++) {
            float av[TM], bv[TN];
            [[unroll]] for (uint i = 0; i < TM; i++) av[i] = As[kk * BM + ty + i * TY];
            [[unroll]] for (uint j = 0; j < TN; j++) bv[j] = Bs[kk * BN + tx + j * TX];
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++) acc[i * TN + j] = fma(av[i], bv[j], acc[i * TN + j]);
        }
        barrier();
    }

    [[unroll]] for (uint i = 0; i < TM; i++) {
        const uint row = m0 + ty + i * TY;
        if (row >= p.m) break;
        [[unroll]] for (uint j = 0; j < TN; j++) {
            const uint col = n0 + tx + j * TX;
            if (col < p.n) storeC(batch, slice, row, col, acc[i * TN + j]);
        }
    }
}
#endif
