#version 450
// rope: 3-D RoPE of spec §4 in place on q and k of qkv: x0' = x0·cos α − x1·sin α, x1' = x1·cos β + x0·sin β.
// bindings: 0 qkv [rows, 3·heads·headDim] f32, q|k|v columns (v untouched); push constants in rope.glsl.
// grid: one invocation per token row and pair of an axis block, rows·3·half, 1-D, folded into y past 65535.
#include "common.glsl"
#include "rope.glsl"
LOCAL_SIZE_1D
layout(std430, binding = 0) buffer QKV { float qkv[]; };

void main() {
    uint g = GLOBAL_INDEX_1D;
    if (g >= p.pairs) return;
    RopePair r = ropePair(g);
    if (r.pos == 0u) return;  // identity at position 0
    for (uint part = 0u; part < 2u; ++part) {  // q, k
        for (uint h = 0u; h < p.heads; ++h) {
            uint i = r.idx + (part * p.heads + h) * p.headDim;
            float x0 = qkv[i], x1 = qkv[i + 1u];
            qkv[i] = x0 * r.a.y - x1 * r.a.x;
            qkv[i + 1u] = x1 * r.b.y + x0 * r.b.x;
        }
    }
}
