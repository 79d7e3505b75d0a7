// dropout.glsl: the stateless dropout mask shared by dropout.comp and the masked low-rank term of gemm:
// keep(i) = murmur3(seed, salt, i) >> 8 >= threshold, exactly as ref.DropoutKeep.

// murmurStep and murmurFinish are MurmurHash3_x86_32 of the 12-byte key (seed, salt, index), hash seed 0.
uint murmurStep(uint h, uint k) {
    k *= 0xcc9e2d51u;
    k = (k << 15) | (k >> 17);
    k *= 0x1b873593u;
    h ^= k;
    h = (h << 13) | (h >> 19);
    return h * 5u + 0xe6546b64u;
}

uint murmurFinish(uint h) {
    h ^= 12u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

bool dropoutKeep(uint seed, uint salt, uint index, uint threshold) {
    return (murmurFinish(murmurStep(murmurStep(murmurStep(0u, seed), salt), index)) >> 8) >= threshold;
}
