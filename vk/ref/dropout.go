package ref

import (
	"fmt"
	"math"
	"math/bits"
)

// Dropout as PEFT applies it to a LoRA adapter's input (lora_dropout), with a stateless mask: element i
// of a call is kept when the murmur3 hash of (seed, salt, i) clears a threshold, so the backward pass
// and the GPU kernel recompute the same mask instead of storing it.

// murmur3Words is MurmurHash3_x86_32 with hash seed h over the little-endian bytes of words (a key whose
// length is a multiple of 4, so there is no tail).
func murmur3Words(h uint32, words ...uint32) uint32 {
	for _, k := range words {
		k *= 0xcc9e2d51
		k = bits.RotateLeft32(k, 15)
		k *= 0x1b873593
		h ^= k
		h = bits.RotateLeft32(h, 13)
		h = h*5 + 0xe6546b64
	}
	h ^= uint32(4 * len(words))
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// DropoutHash is the mask hash: MurmurHash3_x86_32 (hash seed 0) of the 12-byte key seed, salt, i. The
// index is taken modulo 2^32.
func DropoutHash(seed, salt uint32, i int) uint32 { return murmur3Words(0, seed, salt, uint32(i)) }

// DropoutThreshold is the integer form of "u >= p" for u = (hash >> 8) / 2^24 uniform in [0, 1): an
// element is kept when hash >> 8 >= ceil(p·2^24). Comparing integers keeps the GPU and the reference
// bit-identical. It panics unless 0 <= p < 1.
func DropoutThreshold(p float64) uint32 {
	if !(p >= 0 && p < 1) {
		panic(fmt.Sprintf("ref: dropout: p = %v, want 0 <= p < 1", p))
	}
	return uint32(math.Ceil(p * (1 << 24)))
}

// DropoutScale is the factor 1/(1−p) applied to kept elements, rounded to float32 because that is the
// value the GPU multiplies by; with it, an f32 product rounded from this float64 one is exactly the GPU's.
func DropoutScale(p float64) float64 {
	DropoutThreshold(p) // validates p
	return float64(float32(1 / (1 - p)))
}

// DropoutKeep reports whether element i survives dropout with probability p under (seed, salt):
// u(seed, salt, i) >= p with u = (DropoutHash >> 8) / 2^24.
func DropoutKeep(seed, salt uint32, i int, p float64) bool {
	return DropoutHash(seed, salt, i)>>8 >= DropoutThreshold(p)
}

// Dropout is y[i] = keep(i)·x[i]·s with keep(i) = DropoutKeep(seed, salt, i, p) and s = DropoutScale(p)
// ≈ 1/(1−p); dropped elements are exactly 0 (even when x[i] is not finite). y may be x.
func Dropout(y, x []float64, seed, salt uint32, p float64) {
	wantLen("Dropout", "x", len(x), len(y))
	dropoutApply(y, x, seed, salt, p, false)
}

// DropoutAt is Dropout of elements first, first+1, … of a larger tensor: keep(i) = DropoutKeep(seed,
// salt, first+i, p), the index wrapping at 2^32 as the GPU's 32-bit index does.
func DropoutAt(y, x []float64, seed, salt, first uint32, p float64) {
	wantLen("DropoutAt", "x", len(x), len(y))
	threshold, scale := DropoutThreshold(p), DropoutScale(p)
	for i := range y {
		y[i] = 0
		if DropoutHash(seed, salt, int(first+uint32(i)))>>8 >= threshold {
			y[i] = x[i] * scale
		}
	}
}

// DropoutBackward is dx[i] = keep(i)·dy[i]·s (overwritten), or dx[i] += keep(i)·dy[i]·s when accumulate,
// with the keep(i) and s of Dropout for the same seed, salt and p: dropout's Jacobian is diagonal.
func DropoutBackward(dx, dy []float64, seed, salt uint32, p float64, accumulate bool) {
	wantLen("DropoutBackward", "dy", len(dy), len(dx))
	dropoutApply(dx, dy, seed, salt, p, accumulate)
}

func dropoutApply(y, x []float64, seed, salt uint32, p float64, accumulate bool) {
	threshold, scale := DropoutThreshold(p), DropoutScale(p)
	for i := range y {
		v := 0.0
		if DropoutHash(seed, salt, i)>>8 >= threshold {
			v = x[i] * scale
		}
		if accumulate {
			y[i] += v
		} else {
			y[i] = v
		}
	}
}
