// attention.glsl: push constants and indexing shared by attention.comp, attention_backward_dq.comp and
// attention_backward_dkv.comp (flash attention, spec §2.5, with the block-causal mask of spec §3).
//
// Layouts (f32): qkv [B·N, 3·H·DH] with columns [q | k | v], head h at [h·DH, (h+1)·DH) of each part;
// o, do [B·N, H·DH]; lse, delta [B, H, N]. Each binding is a window whose batch element 0 starts at the
// element offset given below, so that an op may split a large batch into several dispatches.
//
// Scores are kept in the log2 domain: q is pre-scaled by scale·log2(e) so that softmax uses exp2, and
// lse is stored in natural log units (log Σ_j exp(scale·q_i·k_j)).

// Push constants: mirror of attnPush in vk/attention.go.
layout(push_constant) uniform P {
    uint n;         // tokens per batch element
    uint heads;
    uint frame;     // block-causal frame size FrameTokens (spec §3); n for full attention
    float scale;    // softmax scale
    uint qkvOff;    // element offsets of batch element 0 in each bound window
    uint oOff;
    uint lseOff;
    uint doOff;
    uint dqkvOff;
    uint deltaOff;
} p;

const float LOG2E = 1.4426950408889634;
const float LN2 = 0.6931471805599453;

// qkvAt is the index of element d of head h of part (0 q, 1 k, 2 v) of token i of batch element b in a
// [B·N, 3·H·DH] window whose batch element 0 starts at element off.
uint qkvAt(uint off, uint b, uint i, uint part, uint h, uint d) {
    return off + (b * p.n + i) * 3u * p.heads * DH + part * p.heads * DH + h * DH + d;
}

// outAt is the index of element d of head h of token i of batch element b in an [B·N, H·DH] tensor.
uint outAt(uint off, uint b, uint i, uint h, uint d) {
    return off + (b * p.n + i) * p.heads * DH + h * DH + d;
}

// rowAt is the index of token i of head h of batch element b in a [B, H, N] tensor.
uint rowAt(uint off, uint b, uint h, uint i) {
    return off + (b * p.heads + h) * p.n + i;
}

// frameEnd is one past the last key that query i may see (spec §3): the end of i's frame, cut to N.
uint frameEnd(uint i) {
    return min(p.n, (i / p.frame + 1u) * p.frame);
}

// frameStart is the first query that may see key j: the start of j's frame.
uint frameStart(uint j) {
    return (j / p.frame) * p.frame;
}
