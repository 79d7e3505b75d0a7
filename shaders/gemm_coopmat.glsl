// gemm_coopmat.glsl: the main of gemm.comp's COOPMAT variant (GL_NV_cooperative_matrix, 16×16×16 f16
// fragments, f32 accumulation). Included by gemm.comp after gemm.glsl; A and B go through loadA/loadB, so
// the tiles are converted to f16 while staged in shared memory.
//
// A workgroup of WG invocations (WG/32 subgroups of 32) computes a BM×BN tile of C; subgroup w owns the WM×WN
// sub-tile at (w / (BN/WN), w % (BN/WN)) as (WM/16)·(WN/16) accumulator fragments. K advances by BK through
// two shared buffers: while the subgroups multiply out of one, the next K tile is fetched into registers
// and then written to the other, so one barrier per K tile suffices. Out-of-range elements are staged as 0,
// so any M, N, K works. The epilogue stores each fragment to a per-subgroup 16×16 f32 scratch, from which
// storeC applies alpha, beta and bias with bounds checks.
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128; // 32·(BM/WM)·(BN/WN); BM·BK and BK·BN multiples of WG
layout(constant_id = 1) const uint BM = 128;
layout(constant_id = 2) const uint BN = 128;
layout(constant_id = 3) const uint BK = 32;  // multiple of 16
layout(constant_id = 4) const uint WM = 64;  // multiple of 16
layout(constant_id = 5) const uint WN = 64;  // multiple of 16
const uint FM = WM / 16, FN = WN / 16;
const uint WARPS_N = BN / WN;
// Padded row lengths (halves): +8 keeps every fragment row 16-byte aligned, as coopMatLoadNV wants, while
// shifting rows across shared-memory banks.
const uint SA = BK + 8;
const uint SB = BN + 8;
const uint LA = BM * BK / WG; // elements each invocation stages per K tile
const uint LB = BK * BN / WG;

shared float16_t As[2 * BM * SA]; // two buffers of [BM][SA]: op(A) tile, row-major
shared float16_t Bs[2 * BK * SB]; // two buffers of [BK][SB]: op(B) tile, row-major
shared float Cs[(WG / 32) * 256]; // one 16×16 f32 scratch per subgroup

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint warp = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    const uint wm = warp / WARPS_N, wn = warp % WARPS_N;
    const uint batch = gl_WorkGroupID.z / p.splits, slice = gl_WorkGroupID.z % p.splits;
    const uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    const uint kBegin = slice * p.kSplit, kEnd = min(p.k, kBegin + p.kSplit);
    const uint baseA = p.offA + batch * p.sa, baseB = p.offB + batch * p.sb;
    const bool transA = (p.flags & GEMM_TRANS_A) != 0u, transB = (p.flags & GEMM_TRANS_B) != 0u;

    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> acc[FM * FN];
    [[unroll]] for (uint i = 0; i < FM * FN; i++) acc[i] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);

    float16_t ra[LA], rb[LB];
    // fetch loads K tile k0 into registers; consecutive invocations read consecutive stored addresses.
#define FETCH(k0)                                                                                           \
    [[unroll]] for (uint r = 0; r < LA; r++) {                                                              \
        const uint i = r * WG + tid;                                                                        \
        const uint mm = transA ? i % BM : i / BK, kk = transA ? i / BM : i % BK;                            \
        const uint gm = m0 + mm, gk = (k0) + kk;                                                            \
        ra[r] = float16_t(gm < p.m && gk < kEnd ? loadA(baseA + (transA ? gk * p.lda + gm : gm * p.lda + gk)) : 0.0); \
    }                                                                                                       \
    [[unroll]] for (uint r = 0; r < LB; r++) {                                                              \
        const uint i = r * WG + tid;                                                                        \
        const uint nn = transB ? i / BK : i % BN, kk = transB ? i % BK : i / BN;                            \
        const uint gn = n0 + nn, gk = (k0) + kk;                                                            \
        rb[r] = float16_t(gn < p.n && gk < kEnd ? loadB(baseB + (transB ? gn * p.ldb + gk : gk * p.ldb + gn)) : 0.0); \
    }
    // STAGE writes the fetched registers into shared buffer buf.
#define STAGE(buf)                                                                                          \
    [[unroll]] for (uint r = 0; r < LA; r++) {                                                              \
        const uint i = r * WG + tid;                                                                        \
        const uint mm = transA ? i % BM : i / BK, kk = transA ? i / BM : i % BK;                            \
        As[(buf) * BM * SA + mm * SA + kk] = ra[r];                                                         \
    }                                                                                                       \
    [[unroll]] for (uint r = 0; r < LB; r++) {                                                              \
        const uint i = r * WG + tid;                                                                        \
        const uint nn = transB ? i / BK : i % BN, kk = transB ? i % BK : i / BN;                            \
        Bs[(buf) * BK * SB + kk * SB + nn] = rb[r];                                                         \
    }

    if (kBegin < kEnd) {
        FETCH(kBegin)
        STAGE(0)
    }
    barrier();
    uint buf = 0;
    for (uint k0 = kBegin; k0 < kEnd; k0 += BK) {
        const bool more = k0 + BK < kEnd;
        if (more) {
            FETCH(k0 + BK)
        }
        [[unroll]] for (uint kk = 0; kk < BK; kk += 16) {
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> fa[FM];
            [[unroll]] for (uint i = 0; i < FM; i++)
                coopMatLoadNV(fa[i], As, buf * BM * SA + (wm * WM + i * 16) * SA + kk, SA, false);
            [[unroll]] for (uint j = 0; j < FN; j++) {
                fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> fb;
                coopMatLoadNV(fb, Bs, buf * BK * SB + kk * SB + wn * WN + j * 16, SB, false);
                [[unroll]] for (uint i = 0; i < FM; i++) acc[i * FN + j] = coopMatMulAddNV(fa[i], fb, acc[i * FN + j]);
            }
        }
        if (more) {
            STAGE(buf ^ 1u)
        }
        barrier();
        buf ^= 1u;
    }

    const uint scratch = warp * 256;
    [[unroll]] for (uint i = 0; i < FM; i++) {
        [[unroll]] for (uint j = 0; j < FN; j++) {
            coopMatStoreNV(acc[i * FN + j], Cs, scratch, 16, false);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            const uint row0 = m0 + wm * WM + i * 16, col0 = n0 + wn * WN + j * 16;
            for (uint e = lane; e < 256; e += gl_SubgroupSize) {
                const uint row = row0 + e / 16, col = col0 + e % 16;
                if (row < p.m && col < p.n) storeC(batch, slice, row, col, Cs[scratch + e]);
            }
            subgroupBarrier();
        }
    }
}
