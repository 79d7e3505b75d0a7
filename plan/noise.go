package plan

import (
	"fmt"
	"math/rand/v2"
)

// Noise is the source of CEM's standard-normal draws. cem() draws one [S, D] block per iteration and
// rollout step, in that order (torch.randn(samples, 4): D = 4 searched components for DROID); Normal
// fills dst [S·D] (row-major) with the block of iteration it, step h. Injecting it lets a search be replayed exactly (verify, with a fixture's draws).
type Noise interface {
	Normal(it, h int, dst []float64) error
}

// SeededNoise draws from a PCG generator: a plan is reproducible from its seed.
type SeededNoise struct{ r *rand.Rand }

// NewSeededNoise returns the default noise source, seeded.
func NewSeededNoise(seed uint64) *SeededNoise {
	return &SeededNoise{rand.New(rand.NewPCG(seed, 0xce4))}
}

// Normal fills dst with fresh standard-normal draws (it and h only order them).
func (n *SeededNoise) Normal(it, h int, dst []float64) error {
	for i := range dst {
		dst[i] = n.r.NormFloat64()
	}
	return nil
}

// RecordedNoise replays recorded draws [Iterations, H, S, Dims] (a plan fixture's plan.noise; Dims 0
// means DROID's 4).
type RecordedNoise struct {
	Values                       []float32
	Iterations, H, Samples, Dims int
}

// Normal copies the recorded block of iteration it, step h.
func (n *RecordedNoise) Normal(it, h int, dst []float64) error {
	D := n.Dims
	if D == 0 {
		D = 4
	}
	if it < 0 || it >= n.Iterations || h < 0 || h >= n.H || len(dst) != n.Samples*D {
		return fmt.Errorf("plan: recorded noise [%d, %d, %d, %d] has no block (iteration %d, step %d) of %d values",
			n.Iterations, n.H, n.Samples, D, it, h, len(dst))
	}
	if len(n.Values) != n.Iterations*n.H*n.Samples*D {
		return fmt.Errorf("plan: recorded noise has %d values, want [%d, %d, %d, %d]", len(n.Values), n.Iterations, n.H, n.Samples, D)
	}
	at := (it*n.H + h) * n.Samples * D
	for i := range dst {
		dst[i] = float64(n.Values[at+i])
	}
	return nil
}
