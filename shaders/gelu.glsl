// gelu.glsl: the exact GELU of spec §2.1, gelu(x) = x·Φ(x) with Φ(x) = 0.5·(1 + erf(x/√2)), to a few float32
// ulp. GLSL has no erf, and the usual short approximations (Abramowitz–Stegun 7.1.26) are good only to
// ~1e-7 absolute, which is a large relative error in the left tail.
//
// Everything goes through the tail Q = 0.5·erfc(|x|/√2): Φ(x) = Q for x < 0 and 1 − Q for x ≥ 0, so the left
// tail never forms 1 + erf(·) ≈ 1 − 1 (which cancels; PyTorch's float kernel does). With u = |x|/√2:
//   u < 0.5        Q = 0.5 − 0.5·erf(u), erf by its Taylor series through u¹³ (truncation < 5e-10);
//   0.5 ≤ u < 16   Q = 0.5·e^{−u²}·erfcx(u), erfcx(u) = e^{u²}·erfc(u) = G(u)/u, with G a degree-9
//                  polynomial in s = 2·(u/2^k − 1.5) ∈ [−1, 1) on each octave [2^k, 2^{k+1}), k = −1..3;
//                  coefficients from a relative least-squares fit of u·erfcx(u) on 2000 Chebyshev nodes per
//                  octave, rounded to float32 (relative error < 1e-7 in float64; vk/ref TestGeluTailTable
//                  refits and checks);
//   u ≥ 16         Q = 0 (erfc(16) ≈ 1e-113).
// e^{−u²} = e^{−x²/2} is formed from x, not from the rounded u: x = xh + xl with xh holding 12 significant
// bits, so xh² is exact and x²/2 = xh²/2 + xl·(x + xh)/2; the exponential uses a Cody–Waite reduction by
// ln 2 and a degree-8 Taylor polynomial rather than GLSL's exp, whose error bound (3 + 2|x| ulp) would
// dominate. The tail Q is then within ~5·2^-24 (relative) of 0.5·erfc(|x|/√2), e^{−x²/2} within ~2·2^-24
// (vk TestGeluErfAccuracy measures gelu and gelu' densely over x/√2 in [−10, 10]).

// Coefficients c0..c9 of G (of s^0..s^9) on the octaves of u. BEGIN GELU_TAIL_G
#define GELU_TAIL_OCTAVE_A 0.380203247, 0.0577395335, -0.0121721309, 0.00208720448, -0.000311497221, 4.18630516e-05, -5.16954151e-06, 5.94834944e-07, -6.60845458e-08, 6.83678536e-09 // [0.5, 1)
#define GELU_TAIL_OCTAVE_B 0.482378125, 0.0380755216, -0.0123490859, 0.00334433303, -0.000804087205, 0.000176835892, -3.61123894e-05, 6.9568282e-06, -1.3750149e-06, 2.42433856e-07 // [1, 2)
#define GELU_TAIL_OCTAVE_C 0.537003458, 0.0158843733, -0.00671910448, 0.00244605192, -0.000810645986, 0.000250800891, -7.25490681e-05, 2.02859119e-05, -6.56065777e-06, 1.72757314e-06 // [2, 4)
#define GELU_TAIL_OCTAVE_D 0.5566594, 0.00482889637, -0.00229461538, 0.000958008168, -0.000371381204, 0.000136566363, -4.6599831e-05, 1.58751263e-05, -7.22717459e-06, 2.40316399e-06 // [4, 8)
#define GELU_TAIL_OCTAVE_E 0.562250674, 0.00127947412, -0.000631079136, 0.000275773695, -0.00011292666, 4.4173863e-05, -1.58514758e-05, 5.79903644e-06, -3.10592191e-06, 1.13687554e-06 // [8, 16)
// END GELU_TAIL_G

float horner10(float s, float c[10]) {
    float g = c[9];
    [[unroll]] for (int j = 8; j >= 0; j--) g = g * s + c[j];
    return g;
}

// gelu_tail_g is G(s) on octave i, u in [2^{i−1}, 2^i); a switch on literal coefficients rather than a
// dynamically indexed table, which some compilers copy into per-invocation memory.
float gelu_tail_g(uint octave, float s) {
    switch (octave) {
    case 0u: return horner10(s, float[10](GELU_TAIL_OCTAVE_A));
    case 1u: return horner10(s, float[10](GELU_TAIL_OCTAVE_B));
    case 2u: return horner10(s, float[10](GELU_TAIL_OCTAVE_C));
    case 3u: return horner10(s, float[10](GELU_TAIL_OCTAVE_D));
    default: return horner10(s, float[10](GELU_TAIL_OCTAVE_E));
    }
}

// gauss_half returns e^{−x²/2}, flushed to 0 below e^{−87} (where its products with Q or x are denormal).
float gauss_half(float x) {
    float ax = abs(x);
    precise float xh = uintBitsToFloat(floatBitsToUint(ax) & 0xfffff000u);
    precise float xl = ax - xh;
    precise float ahi = 0.5 * (xh * xh);       // exact
    precise float alo = 0.5 * (xl * (ax + xh)); // x²/2 − ahi, to a relative 2^-23
    if (!(ahi <= 87.0)) return 0.0; // e^{−87} ≈ 1.6e-38 is about the smallest normal float
    float k = roundEven(ahi * 1.44269502);
    // ln 2 = 0.693145751953125 (15 significant bits, so k·it is exact) + 1.42860677e-06.
    precise float r = ahi - k * 0.693145751953125;
    r = (r - k * 1.42860677e-06) + alo; // |r| < 0.42
    float m = -r;
    float e = 2.48015873e-05; // Σ_{n≤8} m^n/n!: truncation < 1.2e-9 relative
    e = e * m + 1.98412698e-04;
    e = e * m + 1.38888889e-03;
    e = e * m + 8.33333333e-03;
    e = e * m + 4.16666667e-02;
    e = e * m + 1.66666667e-01;
    e = e * m + 0.5;
    e = e * m + 1.0;
    e = e * m + 1.0;
    return ldexp(e, -int(k));
}

// gelu_tail returns Q = 0.5·erfc(|x|/√2) and, in gauss, e^{−x²/2}.
float gelu_tail(float x, out float gauss) {
    float ax = abs(x);
    gauss = gauss_half(ax);
    float u = ax * 0.707106769;
    if (u < 0.5) {
        float z = u * u;
        float p = 0.000120553326;
        p = p * z - 0.000854832702;
        p = p * z + 0.00522397785;
        p = p * z - 0.0268661715;
        p = p * z + 0.112837918;
        p = p * z - 0.376126379;
        p = p * z + 1.12837923;
        return 0.5 - 0.5 * (u * p);
    }
    if (!(u < 16.0)) return 0.0; // also NaN: gelu(NaN) = NaN·(1 − 0)
    uint eb = floatBitsToUint(u) >> 23;
    // u·2^-k is exact and lies in [1, 2), so s is exact.
    float s = 2.0 * (u * uintBitsToFloat((254u - eb) << 23) - 1.5);
    return (gauss * gelu_tail_g(eb - 126u, s)) * (0.707106769 / ax);
}

// gelu_value is gelu(x) and gelu_derivative gelu'(x) = Φ(x) + x·φ(x), written as gelu.comp and
// gelu_backward.comp write them, for kernels that apply GELU in an epilogue (gemm.glsl's ELEMENTWISE):
// the same expressions, so that the fused result equals the separate kernel's bit for bit.
float gelu_value(float x) {
    float gauss;
    float q = gelu_tail(x, gauss);
    return x * (x < 0.0 ? q : 1.0 - q);
}

float gelu_derivative(float x) {
    float gauss;
    float q = gelu_tail(x, gauss);
    return (x < 0.0 ? q : 1.0 - q) + x * (gauss * 0.398942292);
}
