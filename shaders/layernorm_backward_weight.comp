#version 450
// layernorm_backward_weight: dw[j] += Σ_rows dy[r, j]·x̂[r, j] and db[j] += Σ_rows dy[r, j], x̂ = (x − mean[r])·rstd[r]: the weight and bias gradients of LayerNorm, accumulated.
// bindings: 0 dw [dim], 1 db [dim], 2 dy [rows, dim], 3 x [rows, dim], 4 mean [rows], 5 rstd [rows].
// grid: ceil(dim / COLS) workgroups of COLS×LANES invocations; lane l sums rows l, l+LANES, ... of its column, then the lanes are added in a fixed tree (deterministic, no atomics).
layout(local_size_x_id = 0, local_size_y_id = 1) in;
layout(constant_id = 0) const uint COLS = 16;
layout(constant_id = 1) const uint LANES = 16; // a power of two

layout(std430, binding = 0) buffer DW { float dw[]; };
layout(std430, binding = 1) buffer DB { float db[]; };
layout(std430, binding = 2) readonly buffer DY { float dy[]; };
layout(std430, binding = 3) readonly buffer X { float x[]; };
layout(std430, binding = 4) readonly buffer Mean { float mean_in[]; };
layout(std430, binding = 5) readonly buffer Rstd { float rstd_in[]; };
layout(push_constant) uniform P { uint rows; uint dim; } p;

shared vec2 partial[COLS * LANES];

void main() {
    uint c = gl_LocalInvocationID.x, l = gl_LocalInvocationID.y;
    uint j = gl_WorkGroupID.x * COLS + c;
    vec2 s = vec2(0); // (Σ dy·x̂, Σ dy)
    if (j < p.dim) {
        for (uint r = l; r < p.rows; r += LANES) {
            float g = dy[r * p.dim + j];
            s += vec2(g * ((x[r * p.dim + j] - mean_in[r]) * rstd_in[r]), g);
        }
    }
    partial[l * COLS + c] = s;
    barrier();
    for (uint h = LANES / 2; h > 0; h >>= 1) {
        if (l < h) partial[l * COLS + c] += partial[(l + h) * COLS + c];
        barrier();
    }
    if (l == 0 && j < p.dim) {
        dw[j] += partial[c].x;
        db[j] += partial[c].y;
    }
}
