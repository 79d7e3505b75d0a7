package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/vjepa-vk/vjepa-vk/vk"
)

// LoRATargets are the module names inside each ACBlock an adapter can wrap.
var loraTargetNames = []string{"qkv", "proj", "fc1", "fc2"}

// LoRAConfig describes the adapters (PEFT semantics): y = W x + b + Scale·B(A x), A [r, in], B [out, r].
type LoRAConfig struct {
	R       int
	Alpha   float64
	Dropout float64  // PEFT's lora_dropout on the adapter input, in [0, 1); active only in training steps
	Targets []string // subset of qkv, proj, fc1, fc2 (default all four)
	RSLoRA  bool     // scale alpha/sqrt(r) (rsLoRA, the default of our configs) instead of alpha/r
	Seed    uint64
	Path    LoRAPath // how the adapters are computed; "" is LoRAFused
}

// LoRAPath says how an adapter's product reaches its layer's output. Both compute the same function, to
// rounding; they differ in passes over the output.
type LoRAPath string

const (
	// LoRAFused sums scale·(x·Aᵀ)·Bᵀ into the base GEMM's epilogue, and the adapter's input gradient
	// (masked by dropout) into the dx GEMM's: no GEMM over the layer's output or input of its own.
	LoRAFused LoRAPath = "fused"
	// LoRAThin runs those two products as separate thin GEMMs accumulating into y and dx (and, with
	// dropout, writes the input gradient out and masks it in a pass of its own).
	LoRAThin LoRAPath = "thin"
)

// Scale is the factor on the adapter path.
func (c LoRAConfig) Scale() float64 {
	if c.RSLoRA {
		return c.Alpha / math.Sqrt(float64(c.R))
	}
	return c.Alpha / float64(c.R)
}

// Validate rejects configurations the adapters cannot run.
func (c LoRAConfig) Validate() error {
	if c.R <= 0 {
		return fmt.Errorf("model: lora.r must be > 0, got %d", c.R)
	}
	if c.Alpha <= 0 {
		return fmt.Errorf("model: lora.alpha must be > 0, got %g", c.Alpha)
	}
	if c.Dropout < 0 || c.Dropout >= 1 {
		return fmt.Errorf("model: lora.dropout must be in [0, 1), got %g", c.Dropout)
	}
	if c.Path != "" && c.Path != LoRAFused && c.Path != LoRAThin {
		return fmt.Errorf("model: lora.path must be %q or %q, got %q", LoRAFused, LoRAThin, c.Path)
	}
	for _, t := range c.Targets {
		if !slices.Contains(loraTargetNames, t) {
			return fmt.Errorf("model: lora.targets: %q is not one of %v", t, loraTargetNames)
		}
	}
	return nil
}

// LoRA is one adapter with its gradients (f32, [r, in] and [out, r]).
type LoRA struct {
	Module       string // e.g. "predictor_blocks.3.attn.qkv" (PEFT key: base_model.model.<Module>.lora_A.weight)
	Index        int    // position among the predictor's adapters (dropout salt)
	R, In, Out   int
	A, B         vk.Tensor
	GradA, GradB vk.Tensor
	Scale        float32
	splitK       vk.Tensor // the predictor's split-K workspace for GradA and GradB, if the device splits them
	// Flat is the element offset of A in the predictor's flat tensors (Predictor.LoRAStorage), B's being
	// Flat + FlatB; -1 when the adapter owns its tensors.
	Flat, FlatB int
}

func (a *LoRA) free(d *vk.Device) {
	if a.Flat >= 0 {
		return // views of the predictor's flat tensors
	}
	for _, t := range []vk.Tensor{a.A, a.B, a.GradA, a.GradB} {
		d.Free(t)
	}
}

// loraFlatAlign: each adapter tensor in the flat storage starts on a multiple of this many elements (256
// bytes: every storage and texel alignment a device asks for).
const loraFlatAlign = 64

// loraFlatSize is the elements of the flat storage for adapters of rank r on linears (in, out) pairs, and
// the offsets of each adapter's A and of its B relative to A.
func loraFlatSize(r int, shapes [][2]int) (total int, flat, flatB []int) {
	round := func(n int) int { return (n + loraFlatAlign - 1) / loraFlatAlign * loraFlatAlign }
	for _, sh := range shapes {
		flat = append(flat, total)
		flatB = append(flatB, round(r*sh[0]))
		total += round(r*sh[0]) + round(sh[1]*r)
	}
	return total, flat, flatB
}

// newLoRA makes an adapter initialized as PEFT does: A ~ kaiming_uniform(a=√5), i.e. U(−1/√in, 1/√in);
// B = 0; gradients zero. With flat storage (params and grads valid) its tensors are views of them at
// element offsets flat (A) and flat + flatB (B); otherwise it allocates its own.
func newLoRA(d *vk.Device, module string, in, out int, c LoRAConfig, rng *rand.Rand, params, grads vk.Tensor, flat, flatB int) (*LoRA, error) {
	a := &LoRA{Module: module, R: c.R, In: in, Out: out, Scale: float32(c.Scale()), Flat: -1}
	var err error
	if params.Valid() {
		a.Flat, a.FlatB = flat, flatB
		view := func(t vk.Tensor, off, rows, cols int) vk.Tensor { return t.Slice(off, rows*cols).Reshape(rows, cols) }
		a.A, a.B = view(params, flat, c.R, in), view(params, flat+flatB, out, c.R)
		a.GradA, a.GradB = view(grads, flat, c.R, in), view(grads, flat+flatB, out, c.R)
	} else {
		alloc := func(rows, cols int) vk.Tensor {
			if err != nil {
				return vk.Tensor{}
			}
			var t vk.Tensor
			t, err = d.NewTensor(vk.F32, rows, cols)
			return t
		}
		a.A, a.B = alloc(c.R, in), alloc(out, c.R)
		a.GradA, a.GradB = alloc(c.R, in), alloc(out, c.R)
	}
	if err != nil {
		a.free(d)
		return nil, fmt.Errorf("model: lora %s: %w", module, err)
	}
	bound := 1 / math.Sqrt(float64(in))
	av := make([]float32, c.R*in)
	for i := range av {
		av[i] = float32((2*rng.Float64() - 1) * bound)
	}
	for _, up := range []struct {
		t vk.Tensor
		v []float32
	}{{a.A, av}, {a.B, make([]float32, out*c.R)}, {a.GradA, make([]float32, c.R*in)}, {a.GradB, make([]float32, out*c.R)}} {
		if err := d.Upload(up.t, up.v); err != nil {
			a.free(d)
			return nil, err
		}
	}
	return a, nil
}

// LoadAdapters wraps the predictor's linears with the trained adapters mods (PEFT scaling of cfg) and
// uploads their weights: an inference predictor with fused LoRA. Every module must be a target in every
// block (what AddLoRA wraps), with the rank of cfg.
func (p *Predictor) LoadAdapters(cfg AdapterConfig, mods []LoRAWeights) error {
	var targets []string
	for _, m := range mods {
		name := m.Module[strings.LastIndexByte(m.Module, '.')+1:]
		if !slices.Contains(targets, name) {
			targets = append(targets, name)
		}
	}
	lc := LoRAConfig{R: cfg.R, Alpha: cfg.LoRAAlpha, RSLoRA: cfg.UseRSLoRA, Targets: targets}
	if err := p.AddLoRA(lc); err != nil {
		return err
	}
	byModule := map[string]LoRAWeights{}
	for _, m := range mods {
		byModule[m.Module] = m
	}
	for _, a := range p.LoRAs {
		m, ok := byModule[a.Module]
		if !ok {
			return fmt.Errorf("model: adapters: no weights for %s (adapters must wrap %v in every block)", a.Module, targets)
		}
		if m.R != a.R || m.In != a.In || m.Out != a.Out {
			return fmt.Errorf("model: adapters: %s: r=%d [%d→%d], the predictor wants r=%d [%d→%d]", a.Module, m.R, m.In, m.Out, a.R, a.In, a.Out)
		}
		if err := p.d.Upload(a.A, m.A); err != nil {
			return err
		}
		if err := p.d.Upload(a.B, m.B); err != nil {
			return err
		}
		delete(byModule, a.Module)
	}
	for mod := range byModule {
		return fmt.Errorf("model: adapters: %s is not a module the predictor wraps", mod)
	}
	return nil
}
