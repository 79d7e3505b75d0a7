#version 450
// copy_blocks: dst[dst_offset + c·dst_block + r·dst_row + j] = (ACCUMULATE: +=) src[src_offset + c·src_block + r·src_row + j] for c < count, r < rows, j < cols (token-range gather/scatter/concat, spec §2.3 steps 3 and 5).
// bindings: 0 dst, 1 src (32-bit elements; copied as bits, added as f32 with ACCUMULATE).
// grid: (ceil(cols / LOCAL_X), count·rows lines folded into y and z): no per-element division.
#include "common.glsl"
LOCAL_SIZE_1D

#ifdef ACCUMULATE
layout(std430, binding = 0) buffer Dst { float dst[]; };
layout(std430, binding = 1) readonly buffer Src { float src[]; };
#else
layout(std430, binding = 0) writeonly buffer Dst { uint dst[]; };
layout(std430, binding = 1) readonly buffer Src { uint src[]; };
#endif
layout(push_constant) uniform P {
    uint count, rows, cols;
    uint src_offset, src_block, src_row;
    uint dst_offset, dst_block, dst_row;
} p;

void main() {
    uint j = gl_WorkGroupID.x * LOCAL_X + gl_LocalInvocationID.x;
    uint line = gl_WorkGroupID.z * gl_NumWorkGroups.y + gl_WorkGroupID.y;
    if (j >= p.cols || line >= p.count * p.rows) return;
    uint r = line % p.rows, c = line / p.rows;
    uint s = p.src_offset + c * p.src_block + r * p.src_row + j;
    uint d = p.dst_offset + c * p.dst_block + r * p.dst_row + j;
#ifdef ACCUMULATE
    dst[d] += src[s];
#else
    dst[d] = src[s];
#endif
}
