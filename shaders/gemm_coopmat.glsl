// gemm_coopmat.glsl: the main of gemm.comp's COOPMAT variant (GL_NV_cooperative_matrix, 16×16×16 f16
// fragments, f32 accumulation). Included by gemm.comp after gemm.glsl. B is f16; A is f16 (A_F16) or f32,
// rounded to f16 while staged.
//
// Tiling. A workgroup of WG invocations (WG/32 subgroups of 32) computes a BM×BN tile of C; subgroup w owns
// the WM×WN sub-tile at (w / (BN/WN), w % (BN/WN)) as (WM/16)·(WN/16) accumulator fragments, so each A
// fragment loaded from shared memory feeds WN/16 products and each B fragment WM/16. K advances by BK
// through two shared buffers: while the subgroups multiply out of one, the next K tile is fetched into
// registers and then written to the other, so one barrier per K tile suffices.
//
// Staging. Each operand tile is staged in its stored layout (no transpose): the dimension that is
// contiguous in device memory (K for A [m,k] and B [n,k], M for A [k,m], N for B [k,n]) stays contiguous,
// and the fragments are loaded row- or column-major to match (spec constants TRANS_A, TRANS_B, equal to
// the push block's flags). Invocations move chunks of 8 consecutive elements: one 16-byte load of 8 halves
// or two of 4 floats when the chunk is in range and the operand's base and row length are multiples of
// 16 bytes, else 8 bounds-checked scalar loads (out-of-range elements are staged as 0, so any M, N, K
// works); each chunk is one 16-byte shared store. Shared memory is one uvec4 array: staged rows are padded
// by 8 halves, which keeps every fragment row 16-byte aligned (as coopMatLoadNV wants) and spreads rows
// over banks. Size: 2·(max(BM·(BK+8), BK·(BM+8)) + max(BN·(BK+8), BK·(BN+8)))·2 bytes (40 KiB for
// 128×128×32), mirrored by gemmTile.shared in vk/gemm.go.
//
// Epilogue. After the last barrier the staging memory is reused: each subgroup stores one row of its
// fragments (16×WN f32, rows padded by 4 floats) to its own scratch, from which storeC applies alpha,
// beta and bias with bounds checks, lanes walking along rows for coalesced writes.
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require

#if !defined(B_F16) || defined(A_BF16)
#error "the COOPMAT variant multiplies f16 B by f16 or f32 A"
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256; // 32·(BM/WM)·(BN/WN)
layout(constant_id = 1) const uint BM = 128; // multiple of 16, >= BK; BM·BK a multiple of 8·WG
layout(constant_id = 2) const uint BN = 128; // multiple of 16, >= BK; BN·BK a multiple of 8·WG
layout(constant_id = 3) const uint BK = 32;  // multiple of 16
layout(constant_id = 4) const uint WM = 64;  // multiple of 16
layout(constant_id = 5) const uint WN = 32;  // multiple of 16
layout(constant_id = 6) const bool TRANS_A = false; // A stored [k,m]; must match GEMM_TRANS_A
layout(constant_id = 7) const bool TRANS_B = true;  // B stored [n,k]; must match GEMM_TRANS_B
const uint FM = WM / 16, FN = WN / 16;
const uint WARPS_N = BN / WN;

// 16-byte views of A and B (bindings 0 and 1 of gemm.glsl) for whole, aligned chunks.
#ifdef A_F16
layout(std430, binding = 0) readonly buffer BufA8 { uvec4 a8[]; }; // 8 halves per element
#else
layout(std430, binding = 0) readonly buffer BufA4 { vec4 a4[]; };
#endif
layout(std430, binding = 1) readonly buffer BufB8 { uvec4 b8[]; };

// Staged tiles as stored: [AO][AI] and [BO][BI], AI and BI contiguous; row strides in uvec4s (8 halves).
const uint AO = TRANS_A ? BK : BM, AI = TRANS_A ? BM : BK;
const uint BO = TRANS_B ? BN : BK, BI = TRANS_B ? BK : BN;
const uint SA = AI / 8 + 1, SB = BI / 8 + 1;
const uint A_BUF = AO * SA, B_BUF = BO * SB; // one buffer, in uvec4s
const uint CA = AO * (AI / 8) / WG;           // chunks each invocation moves per K tile
const uint CB = BO * (BI / 8) / WG;
const uint STAGING = 2 * (A_BUF + B_BUF);
// Epilogue scratch per subgroup: 16 rows of WN floats, padded to WN+4 (16-byte aligned rows).
const uint SC = WN / 4 + 1;
const uint SCRATCH = (WG / 32) * 16 * SC;
shared uvec4 smem[STAGING > SCRATCH ? STAGING : SCRATCH];

// Set once by main; read by fetch and stage.
uint tid, m0, n0, kEnd, baseA, baseB;
bool vecA, vecB;

// The chunks fetched for the next K tile: raw f16 words (A_F16 and B) or f32 (A), converted when staged.
#ifdef A_F16
uvec4 ra[CA];
#else
vec4 ra[2 * CA];
#endif
uvec4 rb[CB];

// fetch reads K tile [k0, k0+BK) of both operands into ra and rb. Chunk c of a tile is row c / (I/8),
// elements 8·(c % (I/8)).. of that row: consecutive invocations read consecutive 16-byte pieces.
void fetch(uint k0) {
    [[unroll]] for (uint r = 0; r < CA; r++) {
        const uint c = r * WG + tid;
        const uint outer = (TRANS_A ? k0 : m0) + c / (AI / 8), inner = (TRANS_A ? m0 : k0) + c % (AI / 8) * 8;
        const uint outerEnd = TRANS_A ? kEnd : p.m, innerEnd = TRANS_A ? p.m : kEnd;
        const uint e = baseA + outer * p.lda + inner;
        if (vecA && outer < outerEnd && inner + 8 <= innerEnd) {
#ifdef A_F16
            ra[r] = a8[e / 8];
#else
            ra[2 * r] = a4[e / 4];
            ra[2 * r + 1] = a4[e / 4 + 1];
#endif
        } else {
            float v[8];
            [[unroll]] for (uint j = 0; j < 8; j++) v[j] = outer < outerEnd && inner + j < innerEnd ? loadA(e + j) : 0.0;
#ifdef A_F16
            ra[r] = uvec4(packHalf2x16(vec2(v[0], v[1])), packHalf2x16(vec2(v[2], v[3])),
                          packHalf2x16(vec2(v[4], v[5])), packHalf2x16(vec2(v[6], v[7])));
#else
            ra[2 * r] = vec4(v[0], v[1], v[2], v[3]);
            ra[2 * r + 1] = vec4(v[4], v[5], v[6], v[7]);
#endif
        }
    }
    [[unroll]] for (uint r = 0; r < CB; r++) {
        const uint c = r * WG + tid;
        const uint outer = (TRANS_B ? n0 : k0) + c / (BI / 8), inner = (TRANS_B ? k0 : n0) + c % (BI / 8) * 8;
        const uint outerEnd = TRANS_B ? p.n : kEnd, innerEnd = TRANS_B ? kEnd : p.n;
        const uint e = baseB + outer * p.ldb + inner;
        if (vecB && outer < outerEnd && inner + 8 <= innerEnd) {
            rb[r] = b8[e / 8];
        } else {
            float v[8];
            [[unroll]] for (uint j = 0; j < 8; j++) v[j] = outer < outerEnd && inner + j < innerEnd ? loadB(e + j) : 0.0;
            rb[r] = uvec4(packHalf2x16(vec2(v[0], v[1])), packHalf2x16(vec2(v[2], v[3])),
                          packHalf2x16(vec2(v[4], v[5])), packHalf2x16(vec2(v[6], v[7])));
        }
    }
}

// stage writes the fetched chunks into shared buffer buf (A buffers first, then B buffers).
void stage(uint buf) {
    [[unroll]] for (uint r = 0; r < CA; r++) {
        const uint c = r * WG + tid;
#ifdef A_F16
        const uvec4 h = ra[r];
#else
        const uvec4 h = uvec4(packHalf2x16(ra[2 * r].xy), packHalf2x16(ra[2 * r].zw),
                              packHalf2x16(ra[2 * r + 1].xy), packHalf2x16(ra[2 * r + 1].zw));
#endif
        smem[buf * A_BUF + c / (AI / 8) * SA + c % (AI / 8)] = h;
    }
    [[unroll]] for (uint r = 0; r < CB; r++) {
        const uint c = r * WG + tid;
        smem[2 * A_BUF + buf * B_BUF + c / (BI / 8) * SB + c % (BI / 8)] = rb[r];
    }
}

void main() {
    tid = gl_LocalInvocationID.x;
    const uint warp = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    const uint wm = warp / WARPS_N, wn = warp % WARPS_N;
    const uint batch = gl_WorkGroupID.z / p.splits, slice = gl_WorkGroupID.z % p.splits;
    m0 = gl_WorkGroupID.y * BM;
    n0 = gl_WorkGroupID.x * BN;
    const uint kBegin = slice * p.kSplit;
    kEnd = min(p.k, kBegin + p.kSplit);
    baseA = p.offA + batch * p.sa;
    baseB = p.offB + batch * p.sb;
    // Chunks start at multiples of 8 elements from m0, n0 and k0 (kBegin is a multiple of 32), so they are
    // 16-byte aligned when the base and the row length are (bindings start 16-byte aligned).
#ifdef A_F16
    vecA = ((baseA | p.lda) & 7u) == 0u;
#else
    vecA = ((baseA | p.lda) & 3u) == 0u;
#endif
    vecB = ((baseB | p.ldb) & 7u) == 0u;

    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> acc[FM * FN];
    [[unroll]] for (uint i = 0; i < FM * FN; i++) acc[i] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);

    if (kBegin < kEnd) {
        fetch(kBegin);
        stage(0);
    }
    barrier();
    uint buf = 0;
    for (uint k0 = kBegin; k0 < kEnd; k0 += BK) {
        const bool more = k0 + BK < kEnd;
        if (more) fetch(k0 + BK);
        const uint aBase = buf * A_BUF, bBase = 2 * A_BUF + buf * B_BUF;
        [[unroll]] for (uint kk = 0; kk < BK; kk += 16) {
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> fa[FM];
            [[unroll]] for (uint i = 0; i < FM; i++) {
                const uint mm = wm * WM + i * 16;
                coopMatLoadNV(fa[i], smem, aBase + (TRANS_A ? kk * SA + mm / 8 : mm * SA + kk / 8), SA, TRANS_A);
            }
            [[unroll]] for (uint j = 0; j < FN; j++) {
                const uint nn = wn * WN + j * 16;
                fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> fb;
                coopMatLoadNV(fb, smem, bBase + (TRANS_B ? nn * SB + kk / 8 : kk * SB + nn / 8), SB, TRANS_B);
                [[unroll]] for (uint i = 0; i < FM; i++) acc[i * FN + j] = coopMatMulAddNV(fa[i], fb, acc[i * FN + j]);
            }
        }
        if (more) stage(buf ^ 1u);
        barrier();
        buf ^= 1u;
    }

    // The barrier ending the K loop (or the one after the first stage) has every subgroup done with the
    // staging buffers, so they can hold the scratch.
    const uint scratch = warp * 16 * SC;
    const uint col0 = n0 + wn * WN;
    [[unroll]] for (uint i = 0; i < FM; i++) {
        [[unroll]] for (uint j = 0; j < FN; j++) coopMatStoreNV(acc[i * FN + j], smem, scratch + j * 4, SC, false);
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        const uint row0 = m0 + wm * WM + i * 16;
        [[dont_unroll]] for (uint e = lane; e < 16 * WN; e += 32) {
            const uint row = row0 + e / WN, col = col0 + e % WN;
            if (row < p.m && col < p.n) storeC(batch, slice, row, col, uintBitsToFloat(smem[scratch + e / WN * SC + e % WN / 4][e % 4]));
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
    }
}
