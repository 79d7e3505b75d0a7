#version 450
// patchify: the Conv3d tubelet patch embedding's im2col (spec §8.3): out[tok, (ci,dt,dy,dx)] =
//   video[b, ci, t·tt+dt, r·ps+dy, c·ps+dx], tok = ((b·nt + t)·nh + r)·nw + c.
// bindings: 0 out [B·nt·nh·nw, C·tt·ps·ps], 1 video [B, C, F, H, W]. grid: 1-D over out elements.
#include "common.glsl"
LOCAL_SIZE_1D
layout(std430, binding = 0) writeonly buffer O { float o[]; };
layout(std430, binding = 1) readonly buffer V { float v[]; };
layout(push_constant) uniform P { uint B; uint C; uint F; uint H; uint W; uint tt; uint ps; uint total; } p;
void main() {
    uint i = GLOBAL_INDEX_1D;
    if (i >= p.total) return;
    uint cols = p.C * p.tt * p.ps * p.ps;
    uint tok = i / cols, col = i % cols;
    uint dx = col % p.ps, dy = (col / p.ps) % p.ps, dt = (col / (p.ps * p.ps)) % p.tt, ci = col / (p.ps * p.ps * p.tt);
    uint nw = p.W / p.ps, nh = p.H / p.ps, nt = p.F / p.tt;
    uint c = tok % nw, r = (tok / nw) % nh, t = (tok / (nw * nh)) % nt, b = tok / (nw * nh * nt);
    uint src = (((b * p.C + ci) * p.F + t * p.tt + dt) * p.H + r * p.ps + dy) * p.W + c * p.ps + dx;
    o[i] = v[src];
}
