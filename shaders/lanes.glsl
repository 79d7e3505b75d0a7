// lanes.glsl: laneSum(x) and laneMax(x), the sum and the maximum of x over the LANES lanes of one subgroup
// (a power of two up to 32), returned to every lane: a butterfly of subgroup shuffles, for the CPU variants
// (-DCPU), where a shared-memory tree's barriers are coroutine switches (llvmpipe). LANES defaults to
// LOCAL_X (a workgroup of one subgroup). Written without a loop: NIR unrolls only innermost loops, and a
// loop left inside the callers' unrolled loops would turn their register arrays into memory indexed lane by
// lane. The shape is fixed, so a result depends only on the inputs and LANES.
#ifndef LANES
#define LANES LOCAL_X
#endif

float laneSum(float x) {
    if (LANES >= 32u) x += subgroupShuffleXor(x, 16u);
    if (LANES >= 16u) x += subgroupShuffleXor(x, 8u);
    if (LANES >= 8u) x += subgroupShuffleXor(x, 4u);
    if (LANES >= 4u) x += subgroupShuffleXor(x, 2u);
    if (LANES >= 2u) x += subgroupShuffleXor(x, 1u);
    return x;
}

float laneMax(float x) {
    if (LANES >= 32u) x = max(x, subgroupShuffleXor(x, 16u));
    if (LANES >= 16u) x = max(x, subgroupShuffleXor(x, 8u));
    if (LANES >= 8u) x = max(x, subgroupShuffleXor(x, 4u));
    if (LANES >= 4u) x = max(x, subgroupShuffleXor(x, 2u));
    if (LANES >= 2u) x = max(x, subgroupShuffleXor(x, 1u));
    return x;
}
