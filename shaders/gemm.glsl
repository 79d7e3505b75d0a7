// gemm.glsl: what every gemm variant shares: the push block (mirrored by gemmPush in vk/gemm.go), the
// bindings, dtype-converting loads of A and B (MASKED, f32 only: one of them dropped out as it is
// loaded, a LoRA adapter's dropout without writing the dropped input), and the epilogue C = alpha·acc + beta·C + bias (+ LOWRANK:
// the low-rank term lowAlpha·keep⊙(U·op(V)), a LoRA path summed into the base product's output; + ELEMENTWISE,
// on LOWRANK variants whose term may be absent (rank 0): one elementwise op on the final value, the
// residual add, GELU or GELU's backward that would otherwise be a kernel of its own after the GEMM).
#extension GL_EXT_control_flow_attributes : enable

// Flags; beta == 0 must not read C (it may hold NaN, and NaN·0 is NaN), so BETA is a flag.
#define GEMM_TRANS_A 1u
#define GEMM_TRANS_B 2u
#define GEMM_BIAS 4u
#define GEMM_BETA 8u
#define GEMM_LOWRANK_TRANS_V 16u // V stored [n, rank], else [rank, n]
#define GEMM_LOWRANK_MASK 32u    // the low-rank term is masked by dropoutKeep
#define GEMM_MASK_A 64u          // MASKED: A is dropped out as it is loaded
#define GEMM_MASK_B 128u         // MASKED: B is
#define GEMM_RESIDUAL 256u       // ELEMENTWISE: C = v + E[row, col]
#define GEMM_GELU 512u           // ELEMENTWISE: C = v, E[row, col] = gelu(v)
#define GEMM_GELU_GRAD 1024u     // ELEMENTWISE: C = v·gelu'(E[row, col])

layout(push_constant) uniform P {
    uint m, n, k;          // this dispatch's product: op(A) [m,k], op(B) [k,n]
    uint lda, ldb, ldc;    // row lengths (elements) of A and B as stored and of C
    uint sa, sb, sc;       // batch strides (elements)
    uint offA, offB, offC; // element offsets of matrix 0 inside the bound windows
    uint offBias;          // element offset of bias[0]
    uint kSplit;           // K elements per split-K slice (>= k when not split)
    uint splitStride;      // elements between the outputs of successive slices (0 when not split)
    uint splits;           // K slices; gl_WorkGroupID.z = batch·splits + slice
    uint flags;            // GEMM_*
    float alpha, beta;
    // LOWRANK: U [m, rank] (row length ldu) · op(V) [rank, n] (V row length ldv), both f32 at element offsets
    // offU, offV; element (row, col) of the term has dropout index maskFirst + row·maskLd + col.
    uint rank, ldu, ldv, offU, offV;
    uint maskFirst, maskLd, maskSalt, maskThreshold;
    float lowAlpha;
    // MASKED: the masked operand's element at offset o from this dispatch's first element (its stored
    // layout, batches included) has dropout index maskFirst + o and is scaled by maskScale when kept.
    float maskScale;
    // ELEMENTWISE: element offset of E's first element; E has C's row length ldc.
    uint offE;
} p;

// A and B are read as 32-bit words whatever their dtype, so that f16 and bf16 need no 16-bit storage
// feature: an element e of a 16-bit tensor is half e&1 of word e>>1 (little-endian). The CPU variant
// declares its own (gemm_cpu.glsl).
#if defined(CPU)
#elif defined(A_F16) || defined(A_BF16)
layout(std430, binding = 0) readonly buffer BufA { uint a[]; };
#else
layout(std430, binding = 0) readonly buffer BufA { float a[]; };
#endif
#if defined(CPU)
#elif defined(B_F16) || defined(B_BF16)
layout(std430, binding = 1) readonly buffer BufB { uint b[]; };
#else
layout(std430, binding = 1) readonly buffer BufB { float b[]; };
#endif
layout(std430, binding = 2) buffer BufC { float c[]; };
layout(std430, binding = 3) readonly buffer BufBias { float bias[]; };

#ifdef LOWRANK
#include "dropout.glsl"
layout(std430, binding = 6) readonly buffer BufSeed { uint maskSeed[]; };
#ifndef CPU
layout(std430, binding = 4) readonly buffer BufU { float lowU[]; };
layout(std430, binding = 5) readonly buffer BufV { float lowV[]; };

// lowRankAt is element (row, col) of the low-rank term, added by storeC in the COOPMAT variant (whose
// accumulators are opaque fragments; the scalar variant stages the term through its tiles, gemm.comp's
// lowRankFirst) and in the LOWRANK_EPILOGUE variant, the scalar twin that tests it on any device. It
// costs 2·rank loads per element; the rows of U and V it reads are shared by a tile and stay in cache.
float lowRankAt(uint row, uint col) {
    if ((p.flags & GEMM_LOWRANK_MASK) != 0u && !dropoutKeep(maskSeed[0], p.maskSalt, p.maskFirst + row * p.maskLd + col, p.maskThreshold))
        return 0.0;
    const bool transV = (p.flags & GEMM_LOWRANK_TRANS_V) != 0u;
    const uint eu = p.offU + row * p.ldu;
    const uint ev = transV ? p.offV + col * p.ldv : p.offV + col;
    const uint sv = transV ? 1u : p.ldv;
    float t = 0.0;
    for (uint j = 0; j < p.rank; j++) t = fma(lowU[eu + j], lowV[ev + j * sv], t);
    return p.lowAlpha * t;
}
#endif // !CPU
#endif

#ifdef ELEMENTWISE
#ifndef LOWRANK
#error ELEMENTWISE variants are LOWRANK variants (a product without a low-rank term runs them at rank 0)
#endif
#include "gelu.glsl"
// E [m, n] f32, the op's other operand: the residual, GELU's output, or GELU's forward input.
layout(std430, binding = 7) buffer BufE { float elem[]; };
#endif

#ifdef MASKED
#include "dropout.glsl"
layout(std430, binding = 4) readonly buffer BufMaskSeed { uint operandSeed[]; };

// dropped is Dropout applied to an operand's element as it is loaded: the same select and f32 product as
// dropout.comp, so a masked load equals a load of the dropped-out tensor bit for bit.
float dropped(float v, uint o) {
    return dropoutKeep(operandSeed[0], p.maskSalt, p.maskFirst + o, p.maskThreshold) ? v * p.maskScale : 0.0;
}
#endif

#ifndef CPU
float f16At(uint w, uint e) { return unpackHalf2x16(w)[e & 1u]; }
float bf16At(uint w, uint e) { return uintBitsToFloat((e & 1u) != 0u ? (w & 0xffff0000u) : (w << 16)); }

float loadA(uint e) {
#if defined(MASKED)
    return (p.flags & GEMM_MASK_A) != 0u ? dropped(a[e], e - p.offA) : a[e];
#elif defined(A_F16)
    return f16At(a[e >> 1], e);
#elif defined(A_BF16)
    return bf16At(a[e >> 1], e);
#else
    return a[e];
#endif
}

float loadB(uint e) {
#if defined(MASKED)
    return (p.flags & GEMM_MASK_B) != 0u ? dropped(b[e], e - p.offB) : b[e];
#elif defined(B_F16)
    return f16At(b[e >> 1], e);
#elif defined(B_BF16)
    return bf16At(b[e >> 1], e);
#else
    return b[e];
#endif
}
#endif // !CPU

// storeC writes element (row, col) of output matrix `batch` (slice `slice` of a split-K workspace when
// splitStride != 0; the host then clears alpha's and beta's flags and the reduce kernel applies them).
// The host never splits K or batches a LOWRANK product. ELEMENTWISE ops act on v once it is final, each
// as the separate kernel computes it (add.comp: a + b; gelu.comp, gelu_backward.comp through gelu.glsl),
// so a fused product rounds exactly as the GEMM followed by that kernel; K chunks before the last run
// without them.
void storeC(uint batch, uint slice, uint row, uint col, float acc) {
    uint e = p.offC + slice * p.splitStride + batch * p.sc + row * p.ldc + col;
    float v = p.alpha * acc;
    if ((p.flags & GEMM_BETA) != 0u) v += p.beta * c[e];
    if ((p.flags & GEMM_BIAS) != 0u) v += bias[p.offBias + col];
#if defined(LOWRANK) && (defined(COOPMAT) || defined(LOWRANK_EPILOGUE))
    if (p.rank != 0u) v += lowRankAt(row, col); // no term: v stays as it is (v + 0 would turn −0 into +0)
#endif
#ifdef ELEMENTWISE
    const uint ee = p.offE + row * p.ldc + col;
    if ((p.flags & GEMM_RESIDUAL) != 0u) v += elem[ee];
    else if ((p.flags & GEMM_GELU_GRAD) != 0u) v *= gelu_derivative(elem[ee]);
    else if ((p.flags & GEMM_GELU) != 0u) elem[ee] = gelu_value(v);
#endif
    c[e] = v;
}

#ifdef CPU
// Epilogue holds the push constants storeC reads, loaded once at the top of gemm_cpu.glsl's main: inside
// control flow llvmpipe reads every push constant lane by lane. storeCWith is storeC reading them from
// it (the CPU variant has no per-element low-rank term); keep the two in step (TestGemmElementwise checks
// every variant against the unfused sequence bit for bit).
struct Epilogue {
    uint offC, splitStride, sc, ldc, offBias, flags, offE;
    float alpha, beta;
};

// The epilogue's flags (GEMM_BIAS, GEMM_BETA, GEMM_LOWRANK_MASK, GEMM_RESIDUAL, GEMM_GELU, GEMM_GELU_GRAD
// of p.flags): a specialization constant, so that the JIT drops the branches not taken. llvmpipe runs a
// branch on a push constant under a lane mask, whichever way it goes: every elementwise product paid for
// the residual's load and both GELU polynomials (a 258×2048×512 product with a residual add ran at 26
// GFLOP/s, without an epilogue at 44).
layout(constant_id = 15) const uint EPI_FLAGS = 0;

Epilogue epilogue() {
    return Epilogue(p.offC, p.splitStride, p.sc, p.ldc, p.offBias, EPI_FLAGS, p.offE, p.alpha, p.beta);
}

// cAt and eAt are the indices of element (row, col) in C (slice `slice` of a split-K workspace, matrix
// `batch`) and in E.
uint cAt(Epilogue q, uint batch, uint slice, uint row, uint col) {
    return q.offC + slice * q.splitStride + batch * q.sc + row * q.ldc + col;
}
uint eAt(Epilogue q, uint row, uint col) { return q.offE + row * q.ldc + col; }

void storeCWith(Epilogue q, uint batch, uint slice, uint row, uint col, float acc) {
    uint e = cAt(q, batch, slice, row, col);
    // precise: with the flags constant (EPI_FLAGS) the adds below are straight-line code, which the JIT
    // would otherwise contract or reorder, and the fused op would no longer equal the separate kernels bit
    // for bit.
    precise float v = q.alpha * acc;
    if ((q.flags & GEMM_BETA) != 0u) v += q.beta * c[e];
    if ((q.flags & GEMM_BIAS) != 0u) v += bias[q.offBias + col];
#ifdef ELEMENTWISE
    const uint ee = eAt(q, row, col);
    if ((q.flags & GEMM_RESIDUAL) != 0u) v += elem[ee];
    else if ((q.flags & GEMM_GELU_GRAD) != 0u) v *= gelu_derivative(elem[ee]);
    else if ((q.flags & GEMM_GELU) != 0u) elem[ee] = gelu_value(v);
#endif
    c[e] = v;
}
#endif
