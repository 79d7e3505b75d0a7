#version 450
// reduce: the partial stage of Sum (SUM: Σx), SumSquares (SUM_SQUARES: Σx² and the count of inf/NaN) and MaxAbs (MAX_ABS: max|x|, NaN if any x is NaN); reduce_finish combines the partials.
// bindings: 0 ws [2·partials] (partial first+g at ws[first+g]; SUM_SQUARES also its count at ws[partials+first+g]), 1 x [n].
// grid: ceil(n / PARTIAL) workgroups, workgroup g reducing x[g·PARTIAL, min(n, (g+1)·PARTIAL)), folded into y past maxComputeWorkGroupCount[0].
#include "common.glsl"
LOCAL_SIZE_1D
layout(constant_id = 1) const uint PARTIAL = 16384;
#include "reduce.glsl"

layout(std430, binding = 0) writeonly buffer WS { float ws[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint n; uint first; uint partials; } p;

void main() {
    uint g = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint begin = g * PARTIAL;
    if (begin >= p.n) return; // uniform across the workgroup
    uint end = min(begin + PARTIAL, p.n);
    vec2 acc = vec2(0);
    for (uint i = begin + gl_LocalInvocationID.x; i < end; i += LOCAL_X) {
        float v = x[i];
#if defined(SUM)
        acc.x += v;
#elif defined(SUM_SQUARES)
        acc += vec2(v * v, (isinf(v) || isnan(v)) ? 1.0 : 0.0);
#elif defined(MAX_ABS)
        acc.x = max_nan(acc.x, abs(v));
#else
#error define SUM, SUM_SQUARES or MAX_ABS
#endif
    }
#ifdef MAX_ABS
    vec2 r = workgroup_max2(acc);
#else
    vec2 r = workgroup_sum2(acc);
#endif
    if (gl_LocalInvocationID.x == 0) {
        ws[p.first + g] = r.x;
#ifdef SUM_SQUARES
        ws[p.partials + p.first + g] = r.y;
#endif
    }
}
