#version 450
// adamw: one fused AdamW step (spec §10) in place: p, m, v updated from g·grad_scale; nothing when skip ≠ 0.
// bindings: 0 p [n], 1 m [n], 2 v [n], 3 g [n] (all f32), 4 hyper f32 [9] (vk.AdamHyper).
// grid: ceil(n / LOCAL_X) groups, folded into y past the x limit.
#include "common.glsl"
#define HYPER_BINDING 4
#include "adamw.glsl"
LOCAL_SIZE_1D
layout(std430, binding = 0) buffer P { float p[]; };
layout(std430, binding = 1) buffer M { float m[]; };
layout(std430, binding = 2) buffer V { float v[]; };
layout(std430, binding = 3) readonly buffer G { float g[]; };
layout(push_constant) uniform Push { uint n; uint decay; } pc;
void main() {
    uint i = GLOBAL_INDEX_1D;
    if (i >= pc.n || h.skip != 0.0) return;
    float pi = p[i], mi = m[i], vi = v[i];
    adam_update(pi, mi, vi, g[i] * h.grad_scale, pc.decay != 0u);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
}
