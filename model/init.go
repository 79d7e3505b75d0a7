package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// MapWeights is an in-memory WeightSource (random init, tests, converted adapters).
type MapWeights map[string][]float32

// ReadFloat32 returns a copy of the named tensor.
func (m MapWeights) ReadFloat32(name string) ([]float32, error) {
	v, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("model: no tensor %q", name)
	}
	return append([]float32(nil), v...), nil
}

// InitPredictor draws fresh predictor weights as the official code does for from-scratch training
// (spec §5): every Linear weight ~ N(0, 0.02²) truncated at ±2 absolute (in practice untruncated), biases
// 0, LayerNorms 1/0, then attn.proj and mlp.fc2 of block i divided by sqrt(2·(i+1)).
func InitPredictor(c PredictorConfig, seed uint64) MapWeights {
	return initWeights(PredictorTensors(c), seed, "predictor_blocks.")
}

// InitEncoder draws encoder weights with the same scheme (used by the demo, where no pretrained encoder
// exists on the machine; real runs load vitg weights).
func InitEncoder(c EncoderConfig, seed uint64) MapWeights {
	return initWeights(EncoderTensors(c), seed, "blocks.")
}

func initWeights(infos []TensorInfo, seed uint64, blockPrefix string) MapWeights {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	m := MapWeights{}
	for _, in := range infos {
		v := make([]float32, in.Numel())
		switch {
		case strings.HasSuffix(in.Name, ".bias"):
		case strings.Contains(in.Name, "norm"):
			for i := range v {
				v[i] = 1
			}
		default:
			std := 0.02
			var blk int
			if rest, ok := strings.CutPrefix(in.Name, blockPrefix); ok &&
				(strings.HasSuffix(in.Name, "attn.proj.weight") || strings.HasSuffix(in.Name, "mlp.fc2.weight")) {
				fmt.Sscanf(rest, "%d", &blk)
				std /= math.Sqrt(2 * float64(blk+1))
			}
			for i := range v {
				x := rng.NormFloat64() * 0.02
				x = math.Max(-2, math.Min(2, x)) // the official absolute bounds (±100σ)
				v[i] = float32(x * std / 0.02)
			}
		}
		m[in.Name] = v
	}
	return m
}
