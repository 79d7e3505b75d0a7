#version 450
// l1_energy: energy[b] = scale·Σ_e |x[b·m + e] − goal[b·goalStride + e]| for b < rows (planning §1 with scale 1/m: the mean L1 distance of each candidate's predicted frame to its goal, shared when goalStride = 0).
// bindings: 0 energy [rows], 1 x [rows·m], 2 goal [m] or [rows·m] (f32 windows, element offsets in push constants).
// grid: one workgroup per row (folded into y past maxComputeWorkGroupCount[0]); each sums its row in a fixed order.
#include "common.glsl"
LOCAL_SIZE_1D
#include "reduce.glsl"

layout(std430, binding = 0) writeonly buffer Energy { float energy[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer Goal { float goal[]; };
// Mirror of l1EnergyPush in vk/l1energy.go.
layout(push_constant) uniform P {
    uint rows;
    uint m;          // elements per row
    uint energyOff;  // element offsets of row 0 in the bound windows
    uint xOff;
    uint goalOff;
    uint goalStride; // 0: one goal for every row; m: a goal per row
    float scale;
} p;

void main() {
    uint b = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (b >= p.rows) return; // uniform across the workgroup
    uint row = p.xOff + b * p.m;
    uint g = p.goalOff + b * p.goalStride;
    float acc = 0.0;
    for (uint e = gl_LocalInvocationID.x; e < p.m; e += LOCAL_X) acc += abs(x[row + e] - goal[g + e]);
    float r = workgroup_sum(acc);
    if (gl_LocalInvocationID.x == 0) energy[p.energyOff + b] = p.scale * r;
}
