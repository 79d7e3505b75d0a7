#version 450
// rope_backward: transpose of rope's map, in place on dq, dk: g0' = g0·cos α + g1·sin β, g1' = g1·cos β − g0·sin α.
// bindings: 0 dqkv [rows, 3·heads·headDim] f32, q|k|v columns (dv untouched); push constants in rope.glsl.
// grid: one invocation per token row and pair of an axis block, rows·3·half, 1-D, folded into y past 65535.
#include "common.glsl"
#include "rope.glsl"
LOCAL_SIZE_1D
layout(std430, binding = 0) buffer DQKV { float dqkv[]; };

void main() {
    uint g = GLOBAL_INDEX_1D;
    if (g >= p.pairs) return;
    RopePair r = ropePair(g);
    if (r.pos == 0u) return;  // identity at position 0
    for (uint part = 0u; part < 2u; ++part) {  // dq, dk
        for (uint h = 0u; h < p.heads; ++h) {
            uint i = r.idx + (part * p.heads + h) * p.headDim;
            float g0 = dqkv[i], g1 = dqkv[i + 1u];
            dqkv[i] = g0 * r.a.y + g1 * r.b.x;
            dqkv[i + 1u] = g1 * r.b.y - g0 * r.a.x;
        }
    }
}
