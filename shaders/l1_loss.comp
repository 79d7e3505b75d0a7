#version 450
// l1_loss: the partial stage of L1Loss (spec §6.2, p = 1): ws[first+g] = Σ |pred − target| over elements [g·PARTIAL, min(n, (g+1)·PARTIAL)); reduce_finish.sum with scale 1/numel makes the mean.
// bindings: 0 ws [partials], 1 pred [n], 2 target [n].
// grid: ceil(n / PARTIAL) workgroups, folded into y past maxComputeWorkGroupCount[0].
#include "common.glsl"
LOCAL_SIZE_1D
layout(constant_id = 1) const uint PARTIAL = 16384;
#include "reduce.glsl"

layout(std430, binding = 0) writeonly buffer WS { float ws[]; };
layout(std430, binding = 1) readonly buffer Pred { float pred[]; };
layout(std430, binding = 2) readonly buffer Target { float target[]; };
layout(push_constant) uniform P { uint n; uint first; } p;

void main() {
    uint g = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint begin = g * PARTIAL;
    if (begin >= p.n) return; // uniform across the workgroup
    uint end = min(begin + PARTIAL, p.n);
    float acc = 0.0;
    for (uint i = begin + gl_LocalInvocationID.x; i < end; i += LOCAL_X) acc += abs(pred[i] - target[i]);
    float r = workgroup_sum(acc);
    if (gl_LocalInvocationID.x == 0) ws[p.first + g] = r;
}
