#version 450
// l1_loss_backward: dpred (ACCUMULATE: +=) = dloss[0]·sign(pred − target)/numel, sign(0) = 0 (spec §6.2, p = 1).
// bindings: 0 dpred [n], 1 pred [n], 2 target [n], 3 dloss [1].
// grid: ceil(n / LOCAL_X) workgroups, folded into y past maxComputeWorkGroupCount[0].
#include "common.glsl"
LOCAL_SIZE_1D

layout(std430, binding = 0) buffer DPred { float dpred[]; };
layout(std430, binding = 1) readonly buffer Pred { float pred[]; };
layout(std430, binding = 2) readonly buffer Target { float target[]; };
layout(std430, binding = 3) readonly buffer DLoss { float dloss[]; };
// inv_numel is 1/numel of the whole loss, which a split dispatch (n < numel) must not change.
layout(push_constant) uniform P { uint n; float inv_numel; } p;

void main() {
    uint i = GLOBAL_INDEX_1D;
    if (i >= p.n) return;
    float g = sign(pred[i] - target[i]) * (dloss[0] * p.inv_numel);
#ifdef ACCUMULATE
    dpred[i] += g;
#else
    dpred[i] = g;
#endif
}
