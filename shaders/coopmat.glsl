// coopmat.glsl: a tiny 16×16 fragment interface for kernels written on cooperative matrices, with two
// implementations: GL_NV_cooperative_matrix (the GPU build) and, with COOPMAT_EMULATE, plain arithmetic
// that any Vulkan device runs (lavapipe), so that one kernel source is tested where no tensor cores exist.
// A kernel includes it, then declares `shared uvec4 smem[]` (the one shared array fragments are loaded
// from and stored to; its layout may depend on COOP_LAZY_OPERANDS), then includes coopmat_emulate.glsl,
// which holds the emulation's functions (they read smem) and is empty in the NV build. Kernels size their
// loops by a workgroup-size specialization constant (WG = 32·warps), never gl_WorkGroupSize (common.glsl).
//
// Interface (a "warp" is 32 invocations that own fragments together; COOP_WARP, COOP_LANE number them):
//   FragA                       16×16 f16 operand; FRAG_LOAD(f, off, stride, colMajor) reads it from smem
//                               as packed halves, off and stride in uvec4s (8 halves); row-major: row r at
//                               off + r·stride, column-major: column c at off + c·stride
//   FragAcc                     16×16 f32 accumulator; FRAG_ZERO(c), FRAG_STORE(c, off, stride) and
//                               FRAG_LOAD_ACC(c, off, stride) move it row-major to/from smem (4 floats a uvec4)
//   FRAG_MULADD(c, a, b)        c += a·b, f16 products summed in f32
//   FRAG_SYNC()                 makes a warp's smem writes visible to the whole warp (and waits for it)
//   COOP_UNROLL                 the loop attribute for loops over fragment arrays
// Rules a kernel obeys so that both builds give the same result: a FragA stays valid only while the smem it
// was loaded from is unchanged (the emulation reads it lazily, at FRAG_MULADD); every invocation of a warp
// executes the same fragment operations (NV requires subgroup-uniform control flow); FRAG_SYNC runs only in
// workgroup-uniform control flow (the emulation's warp spans several hardware subgroups).
//
// NV build: FragA and FragAcc are fcoopmatNV<16|32, subgroup, 16, 16>; a warp is a subgroup, so the host
// requires 32-wide subgroups (gl_SubgroupID, gl_SubgroupInvocationID), and FRAG_SYNC is a subgroup barrier.
//
// Emulation (COOPMAT_EMULATE), independent of the hardware subgroup size (8 on lavapipe, 32 on NV):
//  - warp w is invocations 32w..32w+31 of the workgroup, lane = invocation % 32; no subgroup operation is
//    used, so the 32 logical lanes may sit in any number of hardware subgroups;
//  - FragAcc lives in registers, distributed over the warp: lane l holds row l/2, columns 8·(l%2)..+7;
//  - FragA is only a reference (offset, stride, layout) into smem, which is where every operand comes
//    from; FRAG_MULADD has each lane read its accumulator row of a and its 8 columns of b straight from smem
//    and do 128 FMAs, so no lane ever needs another lane's registers and the emulation needs no barrier of
//    its own (hence the lazy-operand rule above);
//  - FRAG_SYNC is a workgroup barrier, the only way to order smem between lanes of different hardware
//    subgroups (hence the uniform-control-flow rule above).
// Results match the NV build up to the order of the f32 additions.

#ifdef COOPMAT_EMULATE

// Operands are references into smem: a kernel keeps the smem an operand is loaded from for as long as
// it uses the operand (on NV the operand is in registers and that smem may be reused).
const bool COOP_LAZY_OPERANDS = true;
#define COOP_WARP (gl_LocalInvocationID.x / 32u)
#define COOP_LANE (gl_LocalInvocationID.x % 32u)
#define COOP_UNROLL [[dont_unroll]]
#define FRAG_SYNC() barrier()

struct FragA {
    uint off, stride;  // in uvec4s of smem
    bool colMajor;
};

struct FragAcc {
    vec4 lo, hi;  // row COOP_LANE / 2, columns 8·(COOP_LANE % 2) + 0..3 and 4..7
};

#define FRAG_LOAD(f, off_, stride_, colMajor_) f = FragA(off_, stride_, colMajor_)
#define FRAG_ZERO(c) c = FragAcc(vec4(0.0), vec4(0.0))
#define FRAG_MULADD(c, a, b) c = coopEmuMulAdd(a, b, c)
#define FRAG_STORE(c, off_, stride_) coopEmuStore(c, off_, stride_)
#define FRAG_LOAD_ACC(c, off_, stride_) c = coopEmuLoadAcc(off_, stride_)

#else

#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require

const bool COOP_LAZY_OPERANDS = false;
#define COOP_WARP gl_SubgroupID
#define COOP_LANE gl_SubgroupInvocationID
#define COOP_UNROLL [[unroll]]
#define FRAG_SYNC() { subgroupMemoryBarrierShared(); subgroupBarrier(); }
#define FragA fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define FragAcc fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define FRAG_LOAD(f, off_, stride_, colMajor_) coopMatLoadNV(f, smem, off_, stride_, colMajor_)
#define FRAG_ZERO(c) c = FragAcc(0.0)
#define FRAG_MULADD(c, a, b) c = coopMatMulAddNV(a, b, c)
#define FRAG_STORE(c, off_, stride_) coopMatStoreNV(c, smem, off_, stride_, false)
#define FRAG_LOAD_ACC(c, off_, stride_) coopMatLoadNV(c, smem, off_, stride_, false)

#endif

// F16_MAX is the largest finite half. f16x8 packs eight floats as halves, saturating at ±F16_MAX (NaN
// stays NaN): a finite input stays finite, so a masked product P·V = 0·v is exactly 0, as in f32.
const float F16_MAX = 65504.0;

uvec4 f16x8(vec4 a, vec4 b) {
    a = mix(clamp(a, -F16_MAX, F16_MAX), a, isnan(a));
    b = mix(clamp(b, -F16_MAX, F16_MAX), b, isnan(b));
    return uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw));
}
