#version 450
// reduce_finish: the final stage of the two-stage reductions (reduce.comp, l1_loss.comp): SUM: out[0] = scale·Σ ws[0, P); SUM_SQUARES: out[0] += Σ ws[0, P), out[1] = 1 if Σ ws[P, 2P) > 0 (else unchanged); MAX_ABS: out[0] = max ws[0, P).
// bindings: 0 out [1] (SUM_SQUARES: [2]), 1 ws [P] (SUM_SQUARES: [2P]).
// grid: one workgroup; invocation t combines ws[t], ws[t + LOCAL_X], ... in order, then a fixed tree (deterministic).
#include "common.glsl"
LOCAL_SIZE_1D
#include "reduce.glsl"

layout(std430, binding = 0) buffer Out { float result[]; };
layout(std430, binding = 1) readonly buffer WS { float ws[]; };
layout(push_constant) uniform P { uint partials; float scale; } p;

void main() {
    uint t = gl_LocalInvocationID.x;
    vec2 acc = vec2(0);
    for (uint i = t; i < p.partials; i += LOCAL_X) {
#if defined(SUM)
        acc.x += ws[i];
#elif defined(SUM_SQUARES)
        acc += vec2(ws[i], ws[p.partials + i]);
#elif defined(MAX_ABS)
        acc.x = max_nan(acc.x, ws[i]);
#else
#error define SUM, SUM_SQUARES or MAX_ABS
#endif
    }
#ifdef MAX_ABS
    vec2 r = workgroup_max2(acc);
#else
    vec2 r = workgroup_sum2(acc);
#endif
    if (t == 0) {
#if defined(SUM)
        result[0] = p.scale * r.x;
#elif defined(SUM_SQUARES)
        result[0] += r.x;
        if (r.y > 0.0) result[1] = 1.0;
#else
        result[0] = r.x;
#endif
    }
}
