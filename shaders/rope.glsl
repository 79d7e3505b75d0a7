// rope.glsl: push constants, positions and angles of the 3-D RoPE of spec §4, shared by rope.comp and
// rope_backward.comp. One invocation handles one rotated pair (x[2k], x[2k+1]) of one axis block of one
// token, in q and k of every head, which share its angles.

// Push constants: mirror of ropePush in vk/rope.go.
layout(push_constant) uniform P {
    uint pairs;       // invocations: rows · 3 axes · half
    uint rowStart;    // token row (of B·N) of this dispatch's first row
    uint off;         // element offset of that row in the bound qkv window
    uint n;           // tokens per batch element, T · perFrame
    uint perFrame;    // K + GridH·GridW
    uint k;           // conditioning tokens per frame
    uint gridW;
    uint heads;
    uint headDim;
    uint half_;       // pairs per axis block: RopeAxisDim(headDim) / 2 (spec §4.1)
    uint timeOffset;
    float omega[21];  // ω_i = 10000^(−i/half) in fp32, computed on the host like the official code (§4.2)
} p;

// sinCos returns (sin x, cos x) to about 1 ulp for |x| < 8192: Cody–Waite reduction by π/2 in three
// parts, then the minimax polynomials of Cephes sinf/cosf on [−π/4, π/4]. The built-in sin/cos of Vulkan
// only promise 2^−11 absolute error on [−π, π], and RoPE angles reach a few hundred radians.
vec2 sinCos(float x) {
    float ax = abs(x);
    float j = floor(ax * 1.27323954473516);  // octant, 4/π
    if ((uint(j) & 1u) != 0u) j += 1.0;       // round to an even octant: remainder in [−π/4, π/4]
    float r = ((ax - j * 0.78515625) - j * 2.4187564849853515625e-4) - j * 3.77489497744594108e-8;
    float z = r * r;
    float sp = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
    float cp = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z - 0.5 * z + 1.0;
    uint q = (uint(j) >> 1) & 3u;             // quadrant
    float s = q == 0u ? sp : q == 1u ? cp : q == 2u ? -sp : -cp;
    float c = q == 0u ? cp : q == 1u ? -sp : q == 2u ? -cp : sp;
    return vec2(x < 0.0 ? -s : s, c);
}

// RopePair is one pair to rotate in every head of q and k: the element index of its first member in head
// 0 of q, and (sin, cos) of the angles α of its first and β of its second member. pos is 0 where the
// rotation is the identity.
struct RopePair {
    uint idx;
    uint pos;
    vec2 a;  // (sin α, cos α)
    vec2 b;  // (sin β, cos β)
};

RopePair ropePair(uint g) {
    uint perRow = 3u * p.half_;
    uint row = g / perRow, r = g % perRow;
    uint axis = r / p.half_, kk = r % p.half_;

    // Positions (spec §4.4): patch (t, row, col); a conditioning token is (t, 0, 0).
    uint tok = (p.rowStart + row) % p.n;
    uint l = tok % p.perFrame;
    uint pos = tok / p.perFrame + p.timeOffset;
    if (axis > 0u) {
        pos = l < p.k ? 0u : axis == 1u ? (l - p.k) / p.gridW : (l - p.k) % p.gridW;
    }

    RopePair pr;
    pr.idx = p.off + row * 3u * p.heads * p.headDim + axis * 2u * p.half_ + 2u * kk;
    pr.pos = pos;
    // The tiled table (spec §4.3): element j of an axis block uses ω_{j mod half}, so the pair's two
    // members use different angles.
    pr.a = sinCos(float(pos) * p.omega[(2u * kk) % p.half_]);
    pr.b = sinCos(float(pos) * p.omega[(2u * kk + 1u) % p.half_]);
    return pr;
}
