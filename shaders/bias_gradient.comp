#version 450
// bias_gradient: db[j] += Σ_rows dy[r, j], the bias gradient of a Linear y = x·Wᵀ + b, accumulated.
// bindings: 0 db [n], 1 dy [rows, n].
// grid: ceil(n / COLS) workgroups of COLS×LANES invocations; lane l sums rows l, l+LANES, ... of its column, then the lanes are added in a fixed tree (deterministic, no atomics).
layout(local_size_x_id = 0, local_size_y_id = 1) in;
layout(constant_id = 0) const uint COLS = 16;
layout(constant_id = 1) const uint LANES = 16; // a power of two

layout(std430, binding = 0) buffer DB { float db[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(push_constant) uniform P { uint rows; uint n; } p;

shared float partial[COLS * LANES];

void main() {
    uint c = gl_LocalInvocationID.x, l = gl_LocalInvocationID.y;
    uint j = gl_WorkGroupID.x * COLS + c;
    float s = 0;
    if (j < p.n) {
        for (uint r = l; r < p.rows; r += LANES) s += dy[r * p.n + j];
    }
    partial[l * COLS + c] = s;
    barrier();
    for (uint h = LANES / 2; h > 0; h >>= 1) {
        if (l < h) partial[l * COLS + c] += partial[(l + h) * COLS + c];
        barrier();
    }
    if (l == 0 && j < p.n) db[j] += partial[c];
}
