// attention_cpu.glsl: what the CPU-driver variants of the three attention kernels share (-DCPU; see
// gemm_cpu.glsl for how llvmpipe runs a compute shader and why these kernels look as they do). A workgroup
// is one subgroup of L lanes handling a block of MB rows (queries, or keys for dkv). Dot products with the
// other side's rows put those rows on the lanes (one lane per query or key, NV vectors of them per step)
// and broadcast the block's rows with constant-lane subgroupShuffle; the weighted sums of rows (o, dq,
// dk, dv) put head dimensions on the lanes (lane l holds elements 4(uL + l)..+3 of each row, u < U) and
// broadcast the weights the same way. Rows are read as 16-byte texels of uimageBuffer views (head
// dims are multiples of 4 and every row starts on a texel: the host checks). No shared memory, no
// barriers.
//
// Include before attention.glsl (it declares DH); the specialization constants 0..3 (WG, R, BC, DH for the
// other variants) are here L, MB, NV, DH.
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_shuffle : enable

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint L = 8;   // lanes: the device's subgroup size
layout(constant_id = 1) const uint MB = 8;  // rows of the block, <= L
layout(constant_id = 2) const uint NV = 2;  // vectors of L other-side rows per step
layout(constant_id = 3) const uint DH = 64; // head dim, a multiple of 4

const uint T4 = DH / 4;            // texels per head row
const uint U = (T4 + L - 1) / L;   // texel groups per row when head dims are on the lanes
const float NEG_INF = -1.0 / 0.0;

// TEXEL(img, at, t) is texel t of the head row whose first element is at (an element index of the window).
#define TEXEL(img, at, t) uintBitsToFloat(imageLoad(img, int((at) / 4u + (t))))

// laneSum and laneMax over the subgroup's L lanes.
#define LANES L
#include "lanes.glsl"
