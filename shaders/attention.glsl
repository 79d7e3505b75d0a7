// attention.glsl: push constants, indexing and vec4 row access shared by attention.comp,
// attention_backward_dq.comp and attention_backward_dkv.comp (flash attention, spec §2.5, with the
// block-causal mask of spec §3). Include it after the specialization constant DH (head dim). The COOPMAT
// variants (tensor cores, f16 operands) have their mains in attention*_coopmat.glsl.
//
// Layouts (f32): qkv [B·N, 3·H·DH] with columns [q | k | v], head h at [h·DH, (h+1)·DH) of each part;
// o, do [B·N, H·DH]; lse, delta [B, H, N]. Each binding is a window whose batch element 0 starts at the
// element offset given in the push constants, so that an op may split a large batch over dispatches.
//
// Head rows are handled as D4 vec4s: one vec4 load costs a quarter of four scalar ones on CPU drivers,
// which issue each load lane by lane. With DH % 4 == 0 rows are read through vec4 views of the buffers
// (the host keeps every offset a multiple of 4); otherwise element by element, the tail padded with 0.
//
// Scores are kept in the log2 domain: q (or k) is pre-scaled by scale·log2(e) so that softmax uses exp2;
// lse is stored in natural-log units, log Σ_j exp(scale·q_i·k_j).

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

// The push constants the index helpers read. The CPU kernels copy them into registers once, at the top of
// main (attnLoadPush): inside control flow llvmpipe reads a push constant lane by lane.
#ifdef CPU
uint attnN, attnHeads, attnFrame;
void attnLoadPush() {
    attnN = p.n;
    attnHeads = p.heads;
    attnFrame = p.frame;
}
#define ATTN_N attnN
#define ATTN_HEADS attnHeads
#define ATTN_FRAME attnFrame
#else
#define ATTN_N p.n
#define ATTN_HEADS p.heads
#define ATTN_FRAME p.frame
#endif

const uint D4 = (DH + 3u) / 4u;
const bool VEC4 = DH % 4u == 0u;
const float LOG2E = 1.4426950408889634;
const float LN2 = 0.6931471805599453;

// qkvAt is the index of element d of head h of part (0 q, 1 k, 2 v) of token i of batch element b in a
// [B·N, 3·H·DH] window whose batch element 0 starts at element off.
uint qkvAt(uint off, uint b, uint i, uint part, uint h, uint d) {
    return off + (b * ATTN_N + i) * 3u * ATTN_HEADS * DH + part * ATTN_HEADS * DH + h * DH + d;
}

// outAt is the index of element d of head h of token i of batch element b in an [B·N, H·DH] window.
uint outAt(uint off, uint b, uint i, uint h, uint d) {
    return off + (b * ATTN_N + i) * ATTN_HEADS * DH + h * DH + d;
}

// rowAt is the index of token i of head h of batch element b in a [B, H, N] window.
uint rowAt(uint off, uint b, uint h, uint i) {
    return off + (b * ATTN_HEADS + h) * ATTN_N + i;
}

// frameEnd is one past the last key that query i may see (spec §3): the end of i's frame, cut to N.
uint frameEnd(uint i) {
    return min(ATTN_N, (i / ATTN_FRAME + 1u) * ATTN_FRAME);
}

// frameStart is the first query that may see key j: the start of j's frame.
uint frameStart(uint j) {
    return (j / ATTN_FRAME) * ATTN_FRAME;
}

// DEFINE_LOAD4(name, buf, buf4) defines vec4 name(uint at, uint d): elements d..d+3 of the head row
// starting at element at of buffer buf (vec4 view buf4); elements at or past DH read as 0.
#define DEFINE_LOAD4(name, buf, buf4)                                        \
    vec4 name(uint at, uint d) {                                             \
        if (VEC4) return buf4[(at + d) / 4u];                                \
        vec4 v = vec4(0.0);                                                  \
        for (uint c = 0u; c < 4u; ++c) if (d + c < DH) v[c] = buf[at + d + c]; \
        return v;                                                            \
    }

// DEFINE_STORE4(name, buf, buf4) defines void name(uint at, uint d, vec4 v), the store counterpart.
#define DEFINE_STORE4(name, buf, buf4)                                       \
    void name(uint at, uint d, vec4 v) {                                     \
        if (VEC4) { buf4[(at + d) / 4u] = v; return; }                       \
        for (uint c = 0u; c < 4u; ++c) if (d + c < DH) buf[at + d + c] = v[c]; \
    }
