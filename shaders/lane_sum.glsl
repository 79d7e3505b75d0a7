// lane_sum.glsl: laneSum(x), the sum of x over a workgroup of one subgroup (LOCAL_X lanes, a power of two
// up to 32), returned to every lane: a butterfly of subgroup shuffles, for the CPU variants (-DCPU), where a
// shared-memory tree's barriers are coroutine switches (llvmpipe). Written without a loop, as
// attention_cpu.glsl's: a fixed shape, so the result depends only on the inputs and LOCAL_X.
float laneSum(float x) {
    if (LOCAL_X >= 32u) x += subgroupShuffleXor(x, 16u);
    if (LOCAL_X >= 16u) x += subgroupShuffleXor(x, 8u);
    if (LOCAL_X >= 8u) x += subgroupShuffleXor(x, 4u);
    if (LOCAL_X >= 4u) x += subgroupShuffleXor(x, 2u);
    if (LOCAL_X >= 2u) x += subgroupShuffleXor(x, 1u);
    return x;
}
