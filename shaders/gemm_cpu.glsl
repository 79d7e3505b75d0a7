// gemm_cpu.glsl: the CPU-driver variant of gemm.comp (lavapipe), compiled with -DCPU. Same push block,
// flags, epilogue (storeC) and results as the other variants, organised for how llvmpipe runs a compute
// shader: a workgroup is one host-thread task, its invocations are the lanes of one SIMD vector (the
// subgroup), every lane-varying storage-buffer or shared-memory load inside a loop is a scalar loop over
// the lanes with a bounds check per word, a barrier is a coroutine switch, but an imageLoad of a 16-byte
// texel is one vector load per lane and a subgroupShuffle with a constant lane is one register shuffle.
//
// So there is no shared memory and no barrier. A workgroup is one subgroup of L lanes and computes an MT×NT
// tile of C (NT = L·NB) held in registers: acc[i][j] is row m0 + i, column colOf(j, lane) (each lane owns
// NB columns). Each step of KB = 8 values of k reads A as 16-byte texels (lane l: row m0 + l, or for Aᵀ
// the texels of 4 or 8 rows at one k), B likewise with each lane reading its own columns, and
// broadcasts A[m0 + i, k] from the lane that read it with subgroupShuffle: MT·NB·KB multiply-adds per
// (MT/… + NB)·… texel loads. Measured on a 2-core Zen 5 at 512³ (f32, NT): ~26 GFLOP per CPU-second
// against 6.4 for the shared-memory kernel with its 16×16 blocks per invocation.
//
// Operands are bound twice: as storage texel buffers of R32G32B32A32_UINT texels (texA...: 4 f32 or 8
// f16/bf16 elements each) and as word buffers over the same window (wordsA...). An operand whose rows are
// not texel-aligned (VEC_X false: element offset, row length or batch stride not a multiple of the
// elements per texel) is read word by word from the latter, as are the last (k_end − k_begin) % KB
// values of k. Dtypes (DT_X: 0 f32, 1 f16, 2 bf16) and layouts are specialization constants, so each
// combination compiles to straight-line code with constant lanes and components.
//
// Bindings (gemm.glsl numbering, plus the texel/word twins): 0 A texels, 1 B texels, 2 C, 3 bias,
// 8 A words, 9 B words; LOWRANK: 4 U texels, 5 V texels, 6 seed, 10 U words, 11 V words (ELEMENTWISE:
// 7 E); MASKED: 4 seed. Grid: (ceil(m/MT), ceil(n/NT), batch·splits) — x runs over rows, so that
// consecutive workgroups (one host thread each) reuse the same columns of B, usually the weights.
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_shuffle : enable

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint L = 8;          // lanes: the device's subgroup size
layout(constant_id = 1) const uint MT = 8;         // rows of the tile, <= L
layout(constant_id = 2) const uint NB = 3;         // columns per lane; the tile is L·NB columns wide
layout(constant_id = 3) const uint CB = 1;         // column blocking, see colOf
layout(constant_id = 4) const bool TRANS_A = false;
layout(constant_id = 5) const bool TRANS_B = false;
layout(constant_id = 6) const uint DT_A = 0;       // 0 f32, 1 f16, 2 bf16
layout(constant_id = 7) const uint DT_B = 0;
layout(constant_id = 8) const bool VEC_A = true;   // rows of A are texel-aligned
layout(constant_id = 9) const bool VEC_B = true;
layout(constant_id = 10) const bool TRANS_V = false; // LOWRANK: V stored [n, rank]
layout(constant_id = 11) const bool VEC_U = true;
layout(constant_id = 12) const bool VEC_V = true;
layout(constant_id = 13) const bool MASK_A = false; // MASKED: which operand is dropped out
layout(constant_id = 14) const bool MASK_B = false;
// constant_id 15: EPI_FLAGS, the epilogue's flags (gemm.glsl).

const uint KB = 8;  // values of k per loop step
const uint DT_F32 = 0, DT_F16 = 1;
const uint FE_A = DT_A == DT_F32 ? 4 : 8;  // elements per 16-byte texel
const uint FE_B = DT_B == DT_F32 ? 4 : 8;

layout(binding = 0, rgba32ui) uniform readonly uimageBuffer texA;
layout(binding = 1, rgba32ui) uniform readonly uimageBuffer texB;
layout(std430, binding = 8) readonly buffer WordsA { uint wordsA[]; };
layout(std430, binding = 9) readonly buffer WordsB { uint wordsB[]; };
#ifdef LOWRANK
layout(binding = 4, rgba32ui) uniform readonly uimageBuffer texU;
layout(binding = 5, rgba32ui) uniform readonly uimageBuffer texV;
layout(std430, binding = 10) readonly buffer WordsU { uint wordsU[]; };
layout(std430, binding = 11) readonly buffer WordsV { uint wordsV[]; };
#endif

// The tile: acc[i·NB + j] is C[m0 + i, colOf(j, lane)] before the epilogue.
float acc[MT * NB];
uint m0, n0, lane;

// colOf is the column of the tile's column vector j in this lane. CB = 1 interleaves the lanes
// (n0 + L·j + lane: each lane reads its own row of a B stored [n, k]); CB > 1 gives each lane runs of CB
// adjacent columns (n0 + CB·(L·(j/CB) + lane) + j%CB), so that one texel of a B stored [k, n] holds a
// lane's CB columns at one k.
uint colOf(uint j, uint l) {
    return CB == 1 ? n0 + L * j + l : n0 + CB * (L * (j / CB) + l) + j % CB;
}

// decode is element c of a 16-byte texel u holding elements of dtype dt.
float decode(uvec4 u, uint c, uint dt) {
    if (dt == DT_F32) return uintBitsToFloat(u[c]);
    const uint w = u[c >> 1];
    if (dt == DT_F16) return unpackHalf2x16(w)[c & 1u];
    return uintBitsToFloat((c & 1u) != 0u ? (w & 0xffff0000u) : (w << 16));
}

// decodeWord is element e of a word stream of dtype dt, given the word that holds it.
float decodeWord(uint w, uint e, uint dt) {
    if (dt == DT_F32) return uintBitsToFloat(w);
    if (dt == DT_F16) return unpackHalf2x16(w)[e & 1u];
    return uintBitsToFloat((e & 1u) != 0u ? (w & 0xffff0000u) : (w << 16));
}

// OPERAND(X, TEX, WORDS, DT, FE, VEC, MASK, OFF) defines the reads of one operand: elemX(e), the element
// at index e of the bound window, and fetchX(e, v), elements e..e+FE−1 (FE elements: one texel, or word
// by word when the rows are not texel-aligned). MASK drops the operand out as it is read (gemm.glsl's
// dropped, indexed from the dispatch's first element OFF).
#ifdef MASKED
#define MASK_ELEM(MASK, OFF, e, v) ((MASK) ? dropped(v, (e) - (OFF)) : (v))
#else
#define MASK_ELEM(MASK, OFF, e, v) (v)
#endif
#define OPERAND(X, TEX, WORDS, DT, FE, VEC, MASK, OFF)                                             \
    float elem##X(uint e) {                                                                        \
        return MASK_ELEM(MASK, OFF, e, decodeWord(WORDS[DT == DT_F32 ? e : e >> 1], e, DT));       \
    }                                                                                              \
    void fetch##X(uint e, out float v[8]) {                                                        \
        if (VEC) {                                                                                 \
            const uvec4 u = imageLoad(TEX, int(e / FE));                                           \
            [[unroll]] for (uint c = 0; c < FE; c++) v[c] = MASK_ELEM(MASK, OFF, e + c, decode(u, c, DT)); \
        } else {                                                                                   \
            [[unroll]] for (uint c = 0; c < FE; c++) v[c] = elem##X(e + c);                        \
        }                                                                                          \
        [[unroll]] for (uint c = FE; c < 8; c++) v[c] = 0.0;                                       \
    }
OPERAND(A, texA, wordsA, DT_A, FE_A, VEC_A, MASK_A, p.offA)
OPERAND(B, texB, wordsB, DT_B, FE_B, VEC_B, MASK_B, p.offB)
#ifdef LOWRANK
OPERAND(U, texU, wordsU, DT_F32, 4, VEC_U, false, 0u)
OPERAND(V, texV, wordsV, DT_F32, 4, VEC_V, false, 0u)
#endif

// product(baseA, lda, baseB, ldb, kBegin, kEnd) adds op(A)·op(B) over [kBegin, kEnd) to acc, and
// lowRankProduct U·op(V) over the rank: gemm_cpu_product.glsl, instantiated per operand pair.
#define P_NAME product
#define P_FETCH_X fetchA
#define P_ELEM_X elemA
#define P_FETCH_Y fetchB
#define P_ELEM_Y elemB
#define P_TRANS_X TRANS_A
#define P_TRANS_Y TRANS_B
#define P_FE_X FE_A
#define P_FE_Y FE_B
#define P_VEC_X VEC_A
#define P_VEC_Y VEC_B
#include "gemm_cpu_product.glsl"
#ifdef LOWRANK
#define P_NAME lowRankProduct
#define P_FETCH_X fetchU
#define P_ELEM_X elemU
#define P_FETCH_Y fetchV
#define P_ELEM_Y elemV
#define P_TRANS_X false
#define P_TRANS_Y TRANS_V
#define P_FE_X 4u
#define P_FE_Y 4u
#define P_VEC_X VEC_U
#define P_VEC_Y VEC_V
#include "gemm_cpu_product.glsl"
#endif

#ifdef LOWRANK
// lowRankFirst puts the low-rank term into acc, scaled so that storeC's alpha·acc gives lowAlpha·term and
// masked element by element, before the base product is added (the mask applies to the term alone).
void lowRankFirst() {
    // Push constants first, outside control flow (see Epilogue in gemm.glsl).
    const uint rank = p.rank, offU = p.offU, ldu = p.ldu, offV = p.offV, ldv = p.ldv;
    const float f = p.lowAlpha / p.alpha;
    const bool masked = (EPI_FLAGS & GEMM_LOWRANK_MASK) != 0u;
    const uint first = p.maskFirst, ld = p.maskLd, salt = p.maskSalt, threshold = p.maskThreshold;
    if (rank == 0u) return; // an ELEMENTWISE product without a term
    lowRankProduct(offU, ldu, offV, ldv, 0u, rank);
    const uint seed = maskSeed[0];
    [[unroll]] for (uint i = 0; i < MT; i++) {
        [[unroll]] for (uint j = 0; j < NB; j++) {
            // A select, not a multiply by the mask: a dropped element is 0 even when the term is not finite.
            const uint e = first + (m0 + i) * ld + colOf(j, lane);
            acc[i * NB + j] = !masked || dropoutKeep(seed, salt, e, threshold) ? acc[i * NB + j] * f : 0.0;
        }
    }
}
#endif

// touchOutput reads one word of each 64-byte line of the tile's C (and E, which the residual and GELU
// epilogues read or write) before the product, so that the epilogue's stores find their lines in cache.
// Without it each row's first store missed to memory and the stores took a fifth of a 2064×3072×1024
// product's time with 16 lanes. The words read go into acc[0] as +0.0 (the mask is 0 unless m is 0, which
// no dispatch has), so that the JIT keeps the loads; +0.0 + +0.0 leaves the product's start unchanged.
void touchOutput(Epilogue q, uint batch, uint slice) {
    const uint LINE = 16;  // f32 words per 64-byte line
    const uint m = p.m, n = p.n;
    const uint row = min(m0 + lane % MT, m - 1);
    uint t = 0u;
    // Lane l reads row m0 + l % MT; the L/MT lanes of a row split its lines.
    [[unroll]] for (uint j = 0; j * LINE < NB * L; j += L / MT) {
        const uint col = min(n0 + (j + lane / MT) * LINE, n - 1);
        t |= floatBitsToUint(c[cAt(q, batch, slice, row, col)]);
#ifdef ELEMENTWISE
        if ((EPI_FLAGS & (GEMM_RESIDUAL | GEMM_GELU_GRAD | GEMM_GELU)) != 0u) t |= floatBitsToUint(elem[eAt(q, row, col)]);
#endif
    }
    acc[0] += uintBitsToFloat(m == 0u ? t : 0u);
}

void main() {
    lane = gl_SubgroupInvocationID;
    m0 = gl_WorkGroupID.x * MT;
    n0 = gl_WorkGroupID.y * L * NB;
    const uint batch = gl_WorkGroupID.z / p.splits, slice = gl_WorkGroupID.z % p.splits;
    const uint kBegin = slice * p.kSplit, kEnd = min(p.k, kBegin + p.kSplit);
    const Epilogue ep = epilogue();  // loaded here, outside the loops (see Epilogue in gemm.glsl)

    [[unroll]] for (uint i = 0; i < MT * NB; i++) acc[i] = 0.0;
    touchOutput(ep, batch, slice);
#ifdef LOWRANK
    lowRankFirst();
#endif
    product(p.offA + batch * p.sa, p.lda, p.offB + batch * p.sb, p.ldb, kBegin, kEnd);

    // Row by row, shifting the next row into acc[0..NB): indices stay constant without unrolling MT·NB
    // epilogues, which would multiply the JIT's compile time.
    const uint m = p.m, n = p.n;
    [[dont_unroll]] for (uint i = 0; i < MT; i++) {
        const uint row = m0 + i;
        if (row >= m) break;
        [[unroll]] for (uint j = 0; j < NB; j++) {
            const uint col = colOf(j, lane);
            if (col < n) storeCWith(ep, batch, slice, row, col, acc[j]);
        }
        [[unroll]] for (uint r = 0; r < MT - 1; r++)
            [[unroll]] for (uint j = 0; j < NB; j++) acc[r * NB + j] = acc[(r + 1) * NB + j];
    }
}
