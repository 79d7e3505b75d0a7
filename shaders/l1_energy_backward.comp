#version 450
// l1_energy_backward: dx[b·m + e] = denergy[b]·scale·sign(x[b·m + e] − goal[b·goalStride + e]), sign(0) = 0: the gradient of l1_energy (planning §1, scale 1/m), overwritten.
// bindings: 0 dx [rows·m], 1 x [rows·m], 2 goal [m] or [rows·m], 3 denergy [rows] (f32 windows, element offsets in push constants).
// grid: ceil(rows·m / LOCAL_X) workgroups, folded into y past maxComputeWorkGroupCount[0].
#include "common.glsl"
LOCAL_SIZE_1D

layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer Goal { float goal[]; };
layout(std430, binding = 3) readonly buffer DEnergy { float denergy[]; };
// Mirror of l1EnergyBackwardPush in vk/l1energy.go.
layout(push_constant) uniform P {
    uint rows;
    uint m;          // elements per row
    uint dxOff;      // element offsets of row 0 in the bound windows
    uint xOff;
    uint goalOff;
    uint goalStride; // 0: one goal for every row; m: a goal per row
    uint denergyOff;
    float scale;
} p;

void main() {
    uint i = GLOBAL_INDEX_1D;
    if (i >= p.rows * p.m) return;
    uint b = i / p.m;
    uint e = i - b * p.m;
    float d = x[p.xOff + i] - goal[p.goalOff + b * p.goalStride + e];
    dx[p.dxOff + i] = sign(d) * (denergy[p.denergyOff + b] * p.scale);
}
