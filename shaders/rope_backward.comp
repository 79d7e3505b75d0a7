#version 450
// rope_backward: transpose of rope's map on dq and dk in place: g0' = g0·cos α + g1·sin β, g1' = g1·cos β − g0·sin α.
// bindings: 0 dqkv [rows, 3·heads·headDim] f32, q|k|v columns (dv untouched); push constants in rope.glsl.
// grid: one invocation per rotated pair, rows·2·heads·3·half, 1-D, folded into y past the x limit.
#include "common.glsl"
#include "rope.glsl"
LOCAL_SIZE_1D
layout(std430, binding = 0) buffer DQKV { float dqkv[]; };

void main() {
    uint g = GLOBAL_INDEX_1D;
    if (g >= p.pairs) return;
    RopePair r = ropePair(g);
    if (r.pos == 0u) return;  // identity at position 0
    float g0 = dqkv[r.idx], g1 = dqkv[r.idx + 1u];
    dqkv[r.idx] = g0 * r.a.y + g1 * r.b.x;
    dqkv[r.idx + 1u] = g1 * r.b.y - g0 * r.a.x;
}
