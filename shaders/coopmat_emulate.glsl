// coopmat_emulate.glsl: the functions behind coopmat.glsl's emulated fragments (COOPMAT_EMULATE); see
// coopmat.glsl for the design. Included by a kernel after it declares `shared uvec4 smem[]`; empty in the
// NV build.
#ifdef COOPMAT_EMULATE

// coopEmuHalf is element (i, j) of operand f.
float coopEmuHalf(FragA f, uint i, uint j) {
    const uint h = f.colMajor ? (f.off + j * f.stride) * 8u + i : (f.off + i * f.stride) * 8u + j;
    return unpackHalf2x16(smem[h / 8u][(h / 2u) % 4u])[h % 2u];
}

// coopEmuMulAdd returns c + a·b for this lane's 8 elements, one k at a time. The loop is kept rolled: a
// CPU driver compiles it per call site, and unrolled bodies cost seconds of JIT time per kernel.
FragAcc coopEmuMulAdd(FragA a, FragA b, FragAcc c) {
    const uint row = COOP_LANE / 2u, col0 = (COOP_LANE % 2u) * 8u;
    [[dont_unroll]] for (uint k = 0u; k < 16u; ++k) {
        const float ak = coopEmuHalf(a, row, k);
        vec4 lo, hi;
        if (b.colMajor) {
            [[unroll]] for (uint n = 0u; n < 4u; ++n) {
                lo[n] = coopEmuHalf(b, k, col0 + n);
                hi[n] = coopEmuHalf(b, k, col0 + 4u + n);
            }
        } else {  // the row's 8 halves are one uvec4
            const uvec4 w = smem[b.off + k * b.stride + col0 / 8u];
            lo = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
            hi = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
        }
        c.lo = fma(vec4(ak), lo, c.lo);
        c.hi = fma(vec4(ak), hi, c.hi);
    }
    return c;
}

void coopEmuStore(FragAcc c, uint off, uint stride) {
    const uint at = off + (COOP_LANE / 2u) * stride + (COOP_LANE % 2u) * 2u;
    smem[at] = floatBitsToUint(c.lo);
    smem[at + 1u] = floatBitsToUint(c.hi);
}

FragAcc coopEmuLoadAcc(uint off, uint stride) {
    const uint at = off + (COOP_LANE / 2u) * stride + (COOP_LANE % 2u) * 2u;
    return FragAcc(uintBitsToFloat(smem[at]), uintBitsToFloat(smem[at + 1u]));
}

#endif
