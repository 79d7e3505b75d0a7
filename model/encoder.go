package model

import (
	"fmt"

	"github.com/vjepa-vk/vjepa-vk/vk"
)

// Encoder is the frozen V-JEPA 2 ViT (spec §8): Conv3d tubelet patch embedding (as a GEMM), RoPE blocks
// with full attention, final affine LayerNorm. Forward only.
type Encoder struct {
	Cfg    EncoderConfig
	d      *vk.Device
	patch  *linear // patch_embed.proj as [Dim, 3·tt·ps·ps]
	blocks []*acBlock
	norm   layerNorm
}

// LoadEncoder uploads the encoder's tensors (spec §8.2) with base weights in precision prec.
func LoadEncoder(d *vk.Device, cfg EncoderConfig, src WeightSource, prec Precision) (*Encoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	wdt, err := prec.dtype()
	if err != nil {
		return nil, err
	}
	e := &Encoder{Cfg: cfg, d: d}
	in := InChans * cfg.Tubelet * cfg.Patch * cfg.Patch
	if e.patch, err = loadLinear(d, src, "patch_embed.proj", in, cfg.Dim, wdt, weightsForGemm); err != nil {
		e.Free()
		return nil, err
	}
	for i := 0; i < cfg.Depth; i++ {
		b, err := loadBlock(d, src, fmt.Sprintf("blocks.%d.", i), cfg.Dim, cfg.MLPHidden, wdt)
		if err != nil {
			e.Free()
			return nil, err
		}
		e.blocks = append(e.blocks, b)
	}
	if e.norm, err = loadLayerNorm(d, src, "norm", cfg.Dim); err != nil {
		e.Free()
		return nil, err
	}
	return e, nil
}

// Free releases the encoder's tensors.
func (e *Encoder) Free() {
	if e.patch != nil {
		e.patch.free(e.d)
	}
	for _, b := range e.blocks {
		b.free(e.d)
	}
	e.norm.free(e.d)
	*e = Encoder{d: e.d}
}

// EncoderPass holds the tensors of one encoder forward over video [B, 3, F, H, W].
type EncoderPass struct {
	B, F, H, W int
	Tokens     int       // per clip: (F/tt)·(H/ps)·(W/ps), t-major then row then column
	Video      vk.Tensor // [B, 3, F, H, W], normalized (spec §7.7), written by the caller
	Out        vk.Tensor // [B·Tokens, Dim] after the encoder's final LayerNorm (eps 1e-6)
	OutLN      vk.Tensor // [B·Tokens, Dim] plus the parameter-free LayerNorm (eps 1e-5, spec §6.1)
	e          *Encoder
	cols, x, y vk.Tensor
	acts       *blockActs
	mean, rstd vk.Tensor
	owned      []vk.Tensor
}

// NewPass allocates an encoder pass; F must be a multiple of the tubelet, H and W of the patch size.
func (e *Encoder) NewPass(B, F, H, W int) (*EncoderPass, error) {
	return e.newPass(&tensorAlloc{d: e.d}, B, F, H, W)
}

func (e *Encoder) newPass(a *tensorAlloc, B, F, H, W int) (*EncoderPass, error) {
	c := e.Cfg
	if B < 1 || F < 1 || F%c.Tubelet != 0 || H%c.Patch != 0 || W%c.Patch != 0 || H < 1 || W < 1 {
		return nil, fmt.Errorf("model: encoder input [%d, 3, %d, %d, %d]: frames must be a multiple of %d and H, W of %d",
			B, F, H, W, c.Tubelet, c.Patch)
	}
	tok := (F / c.Tubelet) * (H / c.Patch) * (W / c.Patch)
	R := B * tok
	ep := &EncoderPass{B: B, F: F, H: H, W: W, Tokens: tok, e: e}
	ep.Video = a.f32(B, InChans, F, H, W)
	ep.cols = a.f32(R, InChans*c.Tubelet*c.Patch*c.Patch)
	ep.x, ep.y = a.f32(R, c.Dim), a.f32(R, c.Dim)
	ep.Out, ep.OutLN = a.f32(R, c.Dim), a.f32(R, c.Dim)
	ep.mean, ep.rstd = a.f32(R), a.f32(R)
	ep.acts = a.blockActs(R, c.Dim, c.MLPHidden, B*c.Heads*tok)
	ep.owned = a.owned
	if a.err != nil {
		ep.Free()
		return nil, fmt.Errorf("model: allocate encoder pass [%d, 3, %d, %d, %d]: %w", B, F, H, W, a.err)
	}
	return ep, nil
}

// Free releases the pass's tensors.
func (ep *EncoderPass) Free() {
	if ep.e.d == nil {
		return
	}
	for _, t := range ep.owned {
		ep.e.d.Free(t)
	}
	ep.owned = nil
}

// Forward records the encoder (spec §8.3): patchify + patch_embed GEMM, Depth blocks with full attention
// and 3-D RoPE on the token grid (t, row, col), final LayerNorm; then the parameter-free LayerNorm.
func (ep *EncoderPass) Forward(s *vk.Stream) {
	e, c := ep.e, ep.e.Cfg
	vk.Patchify(s, ep.cols, ep.Video, c.Tubelet, c.Patch)
	e.patch.forward(s, ep.x, ep.cols, vk.Tensor{}, dropout{}, post{}) // [R, Dim]
	rope := vk.RopeShape{B: ep.B, T: ep.F / c.Tubelet, K: 0, GridH: ep.H / c.Patch, GridW: ep.W / c.Patch,
		Heads: c.Heads, HeadDim: c.Dim / c.Heads}
	attn := vk.AttnShape{B: ep.B, N: ep.Tokens, Heads: c.Heads, HeadDim: c.Dim / c.Heads}
	x, y := ep.x, ep.y
	for _, b := range e.blocks {
		b.forward(s, y, x, ep.acts, rope, attn, dropout{}, nil)
		x, y = y, x
	}
	vk.LayerNorm(s, ep.Out, ep.mean, ep.rstd, x, e.norm.w, e.norm.b, e.norm.eps)
	vk.LayerNorm(s, ep.OutLN, ep.mean, ep.rstd, ep.Out, vk.Tensor{}, vk.Tensor{}, 1e-5)
}
