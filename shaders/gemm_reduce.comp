#version 450
// gemm_reduce: C[b][i,j] = alpha·Σ_s W[s][b][i,j] + beta·C[b][i,j] + bias[j], the split-K sum in slice order.
// bindings: 0 W [splits][batch][m,n] f32 workspace, 1 C [batch][m,n] f32 (row length ldc, stride sc), 2 bias [n].
// grid: ceil(batch·m·n / LOCAL_X) groups, folded into y past 65535.
#include "common.glsl"
LOCAL_SIZE_1D

#define GEMM_BIAS 4u
#define GEMM_BETA 8u

layout(std430, binding = 0) readonly buffer BufW { float w[]; };
layout(std430, binding = 1) buffer BufC { float c[]; };
layout(std430, binding = 2) readonly buffer BufBias { float bias[]; };
layout(push_constant) uniform P {
    uint m, n, total;   // total = batch·m·n
    uint splits;        // slices, each `total` elements
    uint ldc, sc;       // C row length and batch stride (elements)
    uint offW, offC, offBias; // element offsets inside the bound windows
    uint flags;         // GEMM_BIAS | GEMM_BETA
    float alpha, beta;
} p;

void main() {
    const uint i = GLOBAL_INDEX_1D;
    if (i >= p.total) return;
    float sum = 0.0;
    for (uint s = 0; s < p.splits; s++) sum += w[p.offW + s * p.total + i];
    const uint mn = p.m * p.n;
    const uint batch = i / mn, row = (i % mn) / p.n, col = i % p.n;
    const uint e = p.offC + batch * p.sc + row * p.ldc + col;
    float v = p.alpha * sum;
    if ((p.flags & GEMM_BETA) != 0u) v += p.beta * c[e];
    if ((p.flags & GEMM_BIAS) != 0u) v += bias[p.offBias + col];
    c[e] = v;
}
