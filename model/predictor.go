package model

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/vjepa-vk/vjepa-vk/vk"
)

// Predictor is the V-JEPA 2-AC predictor (spec §2) on a Vulkan device: frozen base weights in the chosen
// precision, optional LoRA adapters with gradients.
type Predictor struct {
	Cfg   PredictorConfig
	LoRAs []*LoRA // in module order; nil until AddLoRA

	d                          *vk.Device
	embed, actionEnc, stateEnc *linear
	extrinsicsEnc              *linear
	blocks                     []*acBlock
	norm                       layerNorm
	proj                       *linear
	plan                       *Plan // non-nil for a planning predictor (NewPlanPredictor): no device
	checkLifetimes             bool  // arenas share nothing and poison tensors outside their lifetimes
	dropP                      float32
	loraThin                   bool      // adapters on LoRAThin: passes need the dropout scratch
	dropSeed                   vk.Tensor // U32 [1], rewritten by the trainer every step
	gradSplitK                 vk.Tensor // split-K workspace of the adapters' weight-gradient GEMMs (GPUs)
	loraParams, loraGrads      vk.Tensor // flat storage of every adapter's A, B and their gradients (LoRAStorage)
	training                   bool      // dropout is recorded into passes recorded while true
	passes                     uint32    // passes created so far: each gets its own dropout salt
	batchPart                  uint32    // SetBatchPart
}

// acBlock is one pre-norm transformer block (spec §2.4).
type acBlock struct {
	norm1, norm2        layerNorm
	qkv, proj, fc1, fc2 *linear
}

// LoadPredictor checks nothing about names (callers run CheckPredictor first) and uploads every tensor of
// spec §2.2 from src, base weights in precision prec. With conditioning widths other than 7, src must
// hold encoders of those widths: a merged checkpoint, or a base overlaid with modules (modules.go).
func LoadPredictor(d *vk.Device, cfg PredictorConfig, src WeightSource, prec Precision) (*Predictor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	wdt, err := prec.dtype()
	if err != nil {
		return nil, err
	}
	p := &Predictor{Cfg: cfg, d: d}
	fail := func(err error) (*Predictor, error) {
		p.Free()
		return nil, err
	}
	D, E, Hd := cfg.Dim, cfg.EmbedDim, cfg.MLPHidden()
	if p.embed, err = loadLinear(d, src, "predictor_embed", E, D, wdt, weightsTransposed); err != nil {
		return fail(err)
	}
	// The conditioning encoders have 7 (or 6) inputs: f32 keeps them exact and costs nothing.
	if p.actionEnc, err = loadLinear(d, src, "action_encoder", cfg.ActionIn(), D, vk.F32, weightsPacked); err != nil {
		return fail(err)
	}
	if p.stateEnc, err = loadLinear(d, src, "state_encoder", cfg.StateIn(), D, vk.F32, weightsPacked); err != nil {
		return fail(err)
	}
	if p.extrinsicsEnc, err = loadLinear(d, src, "extrinsics_encoder", ExtrinsicsDim, D, vk.F32, weightsPacked); err != nil {
		return fail(err)
	}
	for i := 0; i < cfg.Depth; i++ {
		b, err := loadBlock(d, src, fmt.Sprintf("predictor_blocks.%d.", i), D, Hd, wdt)
		if err != nil {
			return fail(err)
		}
		p.blocks = append(p.blocks, b)
	}
	if p.norm, err = loadLayerNorm(d, src, "predictor_norm", D); err != nil {
		return fail(err)
	}
	if p.proj, err = loadLinear(d, src, "predictor_proj", D, E, wdt, weightsTransposed); err != nil {
		return fail(err)
	}
	return p, nil
}

// Free releases every device tensor of the predictor and its adapters (passes free their own arenas).
func (p *Predictor) Free() {
	d := p.d
	if d == nil {
		return
	}
	for _, l := range []*linear{p.embed, p.actionEnc, p.stateEnc, p.extrinsicsEnc, p.proj} {
		if l != nil {
			l.free(d)
		}
	}
	for _, b := range p.blocks {
		b.free(d)
	}
	p.norm.free(d)
	d.Free(p.dropSeed)
	d.Free(p.gradSplitK)
	d.Free(p.loraParams)
	d.Free(p.loraGrads)
	*p = Predictor{d: d}
}

// AddLoRA wraps the target linears of every block with fresh adapters (PEFT init, seeded).
func (p *Predictor) AddLoRA(c LoRAConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if len(p.LoRAs) > 0 {
		return fmt.Errorf("model: predictor already has LoRA adapters")
	}
	targets := c.Targets
	if len(targets) == 0 {
		targets = loraTargetNames
	}
	if c.Dropout > 0 {
		p.dropP = float32(c.Dropout)
		if p.plan == nil {
			var err error
			if p.dropSeed, err = p.d.NewTensor(vk.U32, 1); err != nil {
				return err
			}
			if err := p.d.Upload(p.dropSeed, []float32{0}); err != nil {
				return err
			}
		}
	}
	var wrapped []*linear
	for _, b := range p.blocks {
		for _, name := range loraTargetNames {
			if slices.Contains(targets, name) {
				wrapped = append(wrapped, map[string]*linear{"qkv": b.qkv, "proj": b.proj, "fc1": b.fc1, "fc2": b.fc2}[name])
			}
		}
	}
	// A training predictor keeps every adapter in two flat tensors (weights, gradients), so that the
	// trainer zeroes, sums and updates them in one dispatch each instead of one per tensor.
	shapes := make([][2]int, len(wrapped))
	for i, l := range wrapped {
		shapes[i] = [2]int{l.in, l.out}
	}
	total, flat, flatB := loraFlatSize(c.R, shapes)
	if p.plan == nil && total > 0 {
		for _, t := range []*vk.Tensor{&p.loraParams, &p.loraGrads} {
			var err error
			if *t, err = p.d.NewTensor(vk.F32, total); err == nil {
				err = p.d.WriteBytes(*t, make([]byte, t.Bytes()))
			}
			if err != nil {
				return fmt.Errorf("model: adapters' flat storage: %w", err)
			}
		}
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0x10a))
	for i, l := range wrapped {
		a, err := newLoRA(p.d, l.name, l.in, l.out, c, rng, p.loraParams, p.loraGrads, flat[i], flatB[i])
		if err != nil {
			return err
		}
		a.Index = len(p.LoRAs)
		l.lora, l.thin = a, c.Path == LoRAThin
		p.loraThin = l.thin
		p.LoRAs = append(p.LoRAs, a)
	}
	if p.plan == nil {
		return p.allocGradSplitK()
	}
	return nil
}

// allocGradSplitK gives the adapters' weight-gradient GEMMs (dA [r, in] and dB [out, r], each a reduction
// over every token: few output tiles, a long K) one split-K workspace, sized for the most slices the
// device's policy takes at any K (vk.GemmWorkspaceSize), so that they fill a GPU instead of a few of its
// cores. Devices whose policy never splits them (lavapipe at the model's sizes) get none. The GEMMs run
// one after another, so one workspace serves them all; the memory plan leaves it out (≤ a few MiB).
func (p *Predictor) allocGradSplitK() error {
	const anyK = 1 << 20
	n := 0
	for _, a := range p.LoRAs {
		o := vk.GemmOpts{TransA: true}
		n = max(n, vk.GemmWorkspaceSize(p.d, a.R, a.In, anyK, o), vk.GemmWorkspaceSize(p.d, a.Out, a.R, anyK, o))
	}
	if n == 0 {
		return nil
	}
	var err error
	if p.gradSplitK, err = p.d.NewTensor(vk.F32, n); err != nil {
		return fmt.Errorf("model: adapters' split-K workspace: %w", err)
	}
	for _, a := range p.LoRAs {
		a.splitK = p.gradSplitK
	}
	return nil
}

// maxLoRARank is the largest adapter rank (scratch width for adapter hiddens).
func (p *Predictor) maxLoRARank() int {
	r := 1
	for _, a := range p.LoRAs {
		r = max(r, a.R)
	}
	return r
}

// SetTraining chooses whether passes recorded from now on apply adapter dropout (training steps) or not
// (validation, inference). It changes what is recorded, not streams already recorded.
func (p *Predictor) SetTraining(on bool) { p.training = on }

// SetBatchPart makes passes created from now on compute part `part` of a batch cut into equal parts
// by sample (one data-parallel rank's share of a global batch): adapter dropout hashes each element's
// index in the whole batch's tensor, so the parts together draw exactly the masks of one pass over the
// whole batch. Activations are batch-major ([B·N, D] rows), so part k's rows start at k·numel.
func (p *Predictor) SetBatchPart(part int) { p.batchPart = uint32(part) }

// DropoutSeed is the U32 [1] device tensor the dropout masks hash; write a new value before each
// training step (derived from the step, so a resumed run draws the same masks). Invalid without dropout.
func (p *Predictor) DropoutSeed() vk.Tensor { return p.dropSeed }

// LoRAStorage returns the flat tensors that hold every adapter's A and B (each adapter's at its Flat
// offset, B at Flat + FlatB) and their gradients at the same offsets, the rest zeros; the zero Tensors when
// the adapters own their tensors (a planning predictor, or before AddLoRA).
func (p *Predictor) LoRAStorage() (params, grads vk.Tensor) { return p.loraParams, p.loraGrads }

// Device returns the predictor's device.
func (p *Predictor) Device() *vk.Device { return p.d }

// loadBlock uploads one block's tensors: <pre>norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2.
func loadBlock(d *vk.Device, src WeightSource, pre string, D, Hd int, wdt vk.DType) (*acBlock, error) {
	b := &acBlock{}
	var err error
	if b.norm1, err = loadLayerNorm(d, src, pre+"norm1", D); err == nil {
		if b.norm2, err = loadLayerNorm(d, src, pre+"norm2", D); err == nil {
			if b.qkv, err = loadLinear(d, src, pre+"attn.qkv", D, 3*D, wdt, weightsTransposed); err == nil {
				if b.proj, err = loadLinear(d, src, pre+"attn.proj", D, D, wdt, weightsTransposed); err == nil {
					if b.fc1, err = loadLinear(d, src, pre+"mlp.fc1", D, Hd, wdt, weightsTransposed); err == nil {
						b.fc2, err = loadLinear(d, src, pre+"mlp.fc2", Hd, D, wdt, weightsTransposed)
					}
				}
			}
		}
	}
	if err != nil {
		b.free(d)
		return nil, err
	}
	return b, nil
}

func (b *acBlock) free(d *vk.Device) {
	b.norm1.free(d)
	b.norm2.free(d)
	for _, l := range []*linear{b.qkv, b.proj, b.fc1, b.fc2} {
		if l != nil {
			l.free(d)
		}
	}
}

// NamedGrad is one weight gradient under its state_dict name.
type NamedGrad struct {
	Name string
	Grad vk.Tensor // f32, shape of the weight
}

// EnableWeightGrads allocates f32 gradients (zeroed) for every predictor weight, bias and LayerNorm
// parameter; from then on recorded backward passes accumulate into them (full fine-tuning, or
// analysis). Adapter gradients are unaffected. extrinsics_encoder gets a gradient only with Extrinsics.
func (p *Predictor) EnableWeightGrads() error {
	if p.embed.gw.Valid() {
		return nil
	}
	d := p.d
	alloc := func(shape ...int) (vk.Tensor, error) {
		t, err := d.NewTensor(vk.F32, shape...)
		if err != nil {
			return vk.Tensor{}, err
		}
		return t, d.WriteBytes(t, make([]byte, t.Bytes()))
	}
	var err error
	lin := func(l *linear) {
		if err == nil {
			if l.gw, err = alloc(l.out, l.in); err == nil {
				l.gb, err = alloc(l.out)
			}
		}
	}
	norm := func(n *layerNorm) {
		if err == nil {
			if n.gw, err = alloc(n.w.Shape...); err == nil {
				n.gb, err = alloc(n.b.Shape...)
			}
		}
	}
	for _, l := range []*linear{p.embed, p.actionEnc, p.stateEnc, p.extrinsicsEnc, p.proj} {
		lin(l)
	}
	for _, b := range p.blocks {
		norm(&b.norm1)
		norm(&b.norm2)
		for _, l := range []*linear{b.qkv, b.proj, b.fc1, b.fc2} {
			lin(l)
		}
	}
	norm(&p.norm)
	if err != nil {
		return fmt.Errorf("model: allocate weight gradients: %w", err)
	}
	return nil
}

// WeightGrads lists the weight gradients in state_dict order (empty before EnableWeightGrads).
func (p *Predictor) WeightGrads() []NamedGrad {
	if !p.embed.gw.Valid() {
		return nil
	}
	var out []NamedGrad
	lin := func(name string, l *linear) {
		out = append(out, NamedGrad{name + ".weight", l.gw}, NamedGrad{name + ".bias", l.gb})
	}
	norm := func(name string, n layerNorm) {
		out = append(out, NamedGrad{name + ".weight", n.gw}, NamedGrad{name + ".bias", n.gb})
	}
	lin("predictor_embed", p.embed)
	lin("action_encoder", p.actionEnc)
	lin("state_encoder", p.stateEnc)
	lin("extrinsics_encoder", p.extrinsicsEnc)
	for i, b := range p.blocks {
		pre := fmt.Sprintf("predictor_blocks.%d.", i)
		norm(pre+"norm1", b.norm1)
		lin(pre+"attn.qkv", b.qkv)
		lin(pre+"attn.proj", b.proj)
		norm(pre+"norm2", b.norm2)
		lin(pre+"mlp.fc1", b.fc1)
		lin(pre+"mlp.fc2", b.fc2)
	}
	norm("predictor_norm", p.norm)
	lin("predictor_proj", p.proj)
	return out
}
