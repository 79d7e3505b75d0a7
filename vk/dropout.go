package vk

import (
	"fmt"

	"github.com/vjepa-vk/vjepa-vk/vk/ref"
)

// Dropout on a LoRA adapter's input (PEFT lora_dropout). The mask is not stored: it is a stateless hash
// of (seed, salt, element index), ref.DropoutHash, so DropoutBackward recomputes it, and a recorded step
// replays with a fresh mask once the host writes a new seed into the device tensor.

type dropoutPush struct {
	N         uint32  // elements in this dispatch
	First     uint32  // global index of its first element: the hash sees whole-tensor indices
	Salt      uint32  // call site within a step
	Threshold uint32  // keep when hash >> 8 >= Threshold = ceil(p·2^24), ref.DropoutThreshold
	Scale     float32 // float32(1/(1−p)), ref.DropoutScale
}

// Dropout computes y[i] = keep(i)·x[i]/(1−p) with keep(i) = ref.DropoutKeep(seed[0], salt, i, p): the
// top 24 bits of a murmur3 hash of (seed, salt, i), as a uniform u in [0, 1), clear p. Dropped elements
// are exactly 0. seed is a one-element 32-bit device tensor (u32, i32 or f32, read as its bits); salt
// tells the call sites of one step apart. p in [0, 1); p == 0 copies. x, y are f32 of one shape, and y
// may be x.
func Dropout(s *Stream, y, x, seed Tensor, p float32, salt uint32) {
	dropout(s, y, x, seed, p, salt, 0, s.elementChunk(4))
}

// DropoutAt is Dropout of elements first, first+1, … of a larger logical tensor: keep(i) =
// ref.DropoutKeep(seed[0], salt, first+i, p), the index wrapping at 2^32. One data-parallel rank's rows of
// a global batch get the masks the whole batch would.
func DropoutAt(s *Stream, y, x, seed Tensor, p float32, salt, first uint32) {
	dropout(s, y, x, seed, p, salt, first, s.elementChunk(4))
}

// DropoutBackward computes dx[i] = keep(i)·dy[i]/(1−p): overwritten, or added to dx when accumulate, with
// the keep(i) of Dropout for the same seed, salt and p. dx, dy are f32 of one shape; dx may be dy.
func DropoutBackward(s *Stream, dx, dy, seed Tensor, p float32, salt uint32, accumulate bool) {
	dropoutBackward(s, dx, dy, seed, p, salt, 0, accumulate, s.elementChunk(4))
}

// DropoutBackwardAt is DropoutBackward with the keep(i) of DropoutAt for the same first.
func DropoutBackwardAt(s *Stream, dx, dy, seed Tensor, p float32, salt, first uint32, accumulate bool) {
	dropoutBackward(s, dx, dy, seed, p, salt, first, accumulate, s.elementChunk(4))
}

func dropout(s *Stream, y, x, seed Tensor, p float32, salt, first uint32, chunk int) {
	SameShape("dropout y vs x", y, x)
	dropoutRun(s, "dropout", "dropout", y, x, seed, p, salt, first, chunk)
}

func dropoutBackward(s *Stream, dx, dy, seed Tensor, p float32, salt, first uint32, accumulate bool, chunk int) {
	SameShape("dropout backward dx vs dy", dx, dy)
	shader := "dropout"
	if accumulate {
		shader += ".accumulate"
	}
	dropoutRun(s, "dropout backward", shader, dx, dy, seed, p, salt, first, chunk)
}

// dropoutRun dispatches shader over [0, numel) in chunks of at most chunk elements, element i hashed as
// first+i. Forward and backward are one kernel: dropout is a diagonal linear map, its own Jacobian.
func dropoutRun(s *Stream, op, shader string, y, x, seed Tensor, p float32, salt, first uint32, chunk int) {
	checkF32(op, y, x)
	checkNumel(op, "seed", seed, 1)
	if seed.DType.Size() != 4 {
		panic(fmt.Sprintf("vk: %s: seed %v, want a 32-bit dtype", op, seed))
	}
	if !(p >= 0 && p < 1) {
		panic(fmt.Sprintf("vk: %s: p = %v, want 0 <= p < 1", op, p))
	}
	if uint64(y.Numel()) > 1<<32 {
		panic(fmt.Sprintf("vk: %s: %v has more than 2^32 elements, the hash index range", op, y))
	}
	push := dropoutPush{
		Salt:      salt,
		Threshold: ref.DropoutThreshold(float64(p)),
		Scale:     float32(ref.DropoutScale(float64(p))),
	}
	y, x = flatView(y), flatView(x)
	k := kernel{shader, []uint32{local1D}}
	forChunks(y.Numel(), chunk, func(lo, n int) {
		push.N, push.First = uint32(n), first+uint32(lo)
		s.dispatch(op, k, push, s.grid1D(n, local1D), out(y.Slice(lo, n)), in(x.Slice(lo, n)), in(seed))
	})
}
