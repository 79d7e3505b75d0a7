package model

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Model configurations, every expected state_dict name and shape (spec §2.2, §8.2), the key clean-up of
// spec §9.3, and the checks a loader runs before it reads any data.

// Input widths fixed by the AC predictor (spec §2.1).
const (
	ActionDim     = 7 // action_encoder and state_encoder inputs
	ExtrinsicsDim = 6 // extrinsics_encoder input (ActionDim − 1)
	InChans       = 3 // encoder video channels
)

// PredictorConfig sizes the AC predictor (spec §2.1). Heads and Grid do not change any parameter shape.
type PredictorConfig struct {
	EmbedDim   int     // encoder width: predictor input and output (1408)
	Dim        int     // predictor_embed_dim D (1024)
	Depth      int     // number of ACBlocks (24)
	Heads      int     // attention heads (16, head_dim 64)
	Grid       int     // patches per image side (256 px / 16 = 16)
	MLPRatio   float64 // MLP hidden = int(Dim·MLPRatio) (4)
	Extrinsics bool    // use_extrinsics: adds the extrinsics token; the encoder's weights exist either way
	// ActionDim and StateDim are the widths of the action and state inputs; 0 means ActionDim (7), the
	// official model's. Another width gives new action_encoder/state_encoder layers of that width,
	// trained in full next to the adapters (PEFT's modules_to_save, modules.go).
	ActionDim, StateDim int
}

// ActionIn is the action_encoder's input width.
func (c PredictorConfig) ActionIn() int { return widthOr7(c.ActionDim) }

// StateIn is the state_encoder's input width.
func (c PredictorConfig) StateIn() int { return widthOr7(c.StateDim) }

func widthOr7(n int) int {
	if n == 0 {
		return ActionDim
	}
	return n
}

// Official returns c with the official 7-D conditioning widths: the layout of a base checkpoint.
func (c PredictorConfig) Official() PredictorConfig {
	c.ActionDim, c.StateDim = 0, 0
	return c
}

// OfficialPredictorConfig is the released vjepa2-ac-vitg predictor (spec §2.1).
func OfficialPredictorConfig() PredictorConfig {
	return PredictorConfig{EmbedDim: 1408, Dim: 1024, Depth: 24, Heads: 16, Grid: 16, MLPRatio: 4}
}

// MLPHidden is int(Dim·MLPRatio), as timm's Block computes it.
func (c PredictorConfig) MLPHidden() int { return int(float64(c.Dim) * c.MLPRatio) }

// Validate rejects sizes no predictor can have.
func (c PredictorConfig) Validate() error {
	if c.EmbedDim <= 0 || c.Dim <= 0 || c.Depth <= 0 || c.Heads <= 0 || c.Grid <= 0 || c.MLPHidden() <= 0 {
		return fmt.Errorf("model: predictor config %+v: every size must be > 0", c)
	}
	if c.Dim%c.Heads != 0 {
		return fmt.Errorf("model: predictor config: dim %d is not a multiple of heads %d", c.Dim, c.Heads)
	}
	if c.ActionDim < 0 || c.StateDim < 0 {
		return fmt.Errorf("model: predictor config: action dim %d, state dim %d: want >= 1 (0: 7)", c.ActionDim, c.StateDim)
	}
	return nil
}

// EncoderConfig sizes the frozen ViT encoder (spec §8.1).
type EncoderConfig struct {
	Dim       int // width (1408)
	Depth     int // blocks (40)
	Heads     int // attention heads (22, head_dim 64)
	MLPHidden int // fc1 outputs (6144 = int(1408·48/11))
	Patch     int // spatial patch side (16)
	Tubelet   int // frames per token (2)
}

// NewEncoderConfig is a ViT with the giant MLP ratio 48/11 (hidden int(dim·48/11)), patch 16 and
// tubelet 2, as the encoder fixtures are built.
func NewEncoderConfig(dim, depth, heads int) EncoderConfig {
	return EncoderConfig{Dim: dim, Depth: depth, Heads: heads, MLPHidden: dim * 48 / 11, Patch: 16, Tubelet: 2}
}

// ViTGiantEncoderConfig is vit_giant_xformers, the AC model's frozen encoder (spec §8.1).
func ViTGiantEncoderConfig() EncoderConfig { return NewEncoderConfig(1408, 40, 22) }

// Validate rejects sizes no encoder can have.
func (c EncoderConfig) Validate() error {
	if c.Dim <= 0 || c.Depth <= 0 || c.Heads <= 0 || c.MLPHidden <= 0 || c.Patch <= 0 || c.Tubelet <= 0 {
		return fmt.Errorf("model: encoder config %+v: every size must be > 0", c)
	}
	if c.Dim%c.Heads != 0 {
		return fmt.Errorf("model: encoder config: dim %d is not a multiple of heads %d", c.Dim, c.Heads)
	}
	return nil
}

// PredictorTensors lists the predictor's state_dict in module order: exactly 12·Depth + 12 tensors
// (300 for the official config), extrinsics_encoder included whatever Extrinsics says (spec §2.2). The
// conditioning encoders have the config's widths: c.Official() lists a base checkpoint.
func PredictorTensors(c PredictorConfig) []TensorInfo {
	D, E, H := c.Dim, c.EmbedDim, c.MLPHidden()
	var out []TensorInfo
	add := func(name string, shape ...int) {
		out = append(out, TensorInfo{Name: name, DType: DTypeF32, Shape: shape})
	}
	add("predictor_embed.weight", D, E)
	add("predictor_embed.bias", D)
	add("action_encoder.weight", D, c.ActionIn())
	add("action_encoder.bias", D)
	add("state_encoder.weight", D, c.StateIn())
	add("state_encoder.bias", D)
	add("extrinsics_encoder.weight", D, ExtrinsicsDim)
	add("extrinsics_encoder.bias", D)
	for i := range c.Depth {
		p := fmt.Sprintf("predictor_blocks.%d.", i)
		addBlock(add, p, D, H)
	}
	add("predictor_norm.weight", D)
	add("predictor_norm.bias", D)
	add("predictor_proj.weight", E, D)
	add("predictor_proj.bias", E)
	return out
}

// EncoderTensors lists the encoder's state_dict in module order: 12·Depth + 4 tensors (484 for ViT-g,
// spec §8.2). There is no pos_embed: the encoder uses RoPE.
func EncoderTensors(c EncoderConfig) []TensorInfo {
	var out []TensorInfo
	add := func(name string, shape ...int) {
		out = append(out, TensorInfo{Name: name, DType: DTypeF32, Shape: shape})
	}
	add("patch_embed.proj.weight", c.Dim, InChans, c.Tubelet, c.Patch, c.Patch)
	add("patch_embed.proj.bias", c.Dim)
	for i := range c.Depth {
		addBlock(add, fmt.Sprintf("blocks.%d.", i), c.Dim, c.MLPHidden)
	}
	add("norm.weight", c.Dim)
	add("norm.bias", c.Dim)
	return out
}

// addBlock lists one pre-norm transformer block (spec §2.4, §8.1), identical in encoder and predictor.
func addBlock(add func(string, ...int), p string, dim, hidden int) {
	add(p+"norm1.weight", dim)
	add(p+"norm1.bias", dim)
	add(p+"attn.qkv.weight", 3*dim, dim)
	add(p+"attn.qkv.bias", 3*dim)
	add(p+"attn.proj.weight", dim, dim)
	add(p+"attn.proj.bias", dim)
	add(p+"norm2.weight", dim)
	add(p+"norm2.bias", dim)
	add(p+"mlp.fc1.weight", hidden, dim)
	add(p+"mlp.fc1.bias", hidden)
	add(p+"mlp.fc2.weight", dim, hidden)
	add(p+"mlp.fc2.bias", dim)
}

// CleanKey deletes every occurrence of "module." and "backbone." (spec §9.3: a plain substring delete, as
// the official hub loader does, not only a prefix strip).
func CleanKey(name string) string {
	return strings.ReplaceAll(strings.ReplaceAll(name, "module.", ""), "backbone.", "")
}

// CheckError lists every way a state_dict differs from what a model expects.
type CheckError struct {
	Source     string       // file being loaded
	Missing    []TensorInfo // expected, absent (with the wanted shape)
	Unexpected []TensorInfo // present, not expected
	Mismatched []Mismatch   // present with the wrong shape or a non-float dtype
}

// Mismatch is one tensor present under the right name with the wrong shape or dtype.
type Mismatch struct{ Got, Want TensorInfo }

func (e *CheckError) problems() []string {
	var out []string
	for _, m := range e.Mismatched {
		if !slices.Equal(m.Got.Shape, m.Want.Shape) {
			out = append(out, fmt.Sprintf("%s: shape %v, want %v", m.Want.Name, m.Got.Shape, m.Want.Shape))
		} else {
			out = append(out, fmt.Sprintf("%s: dtype %v, want a floating-point dtype", m.Want.Name, m.Got.DType))
		}
	}
	for _, m := range e.Missing {
		out = append(out, fmt.Sprintf("%s: missing (want shape %v)", m.Name, m.Shape))
	}
	for _, u := range e.Unexpected {
		out = append(out, fmt.Sprintf("%s: unexpected (shape %v)", u.Name, u.Shape))
	}
	return out
}

func (e *CheckError) Error() string {
	p := e.problems()
	if len(p) == 1 {
		return fmt.Sprintf("model: load %s: %s", e.Source, p[0])
	}
	return fmt.Sprintf("model: load %s: %d tensor problems (%d mis-shaped, %d missing, %d unexpected): %s",
		e.Source, len(p), len(e.Mismatched), len(e.Missing), len(e.Unexpected), strings.Join(p, "; "))
}

// CheckTensors compares a state_dict (names already cleaned) with the expected list: every expected name
// present once with the expected shape and a floating-point dtype, nothing else except names ignore
// accepts (ignore may be nil). It returns nil or one *CheckError naming every problem.
func CheckTensors(source string, want, got []TensorInfo, ignore func(name string) bool) error {
	e := &CheckError{Source: source}
	gotByName := make(map[string]TensorInfo, len(got))
	for _, g := range got {
		gotByName[g.Name] = g
	}
	wanted := make(map[string]bool, len(want))
	for _, w := range want {
		wanted[w.Name] = true
		g, ok := gotByName[w.Name]
		switch {
		case !ok:
			e.Missing = append(e.Missing, w)
		case !slices.Equal(g.Shape, w.Shape) || !g.DType.IsFloat():
			e.Mismatched = append(e.Mismatched, Mismatch{Got: g, Want: w})
		}
	}
	for _, g := range got {
		if !wanted[g.Name] && (ignore == nil || !ignore(g.Name)) {
			e.Unexpected = append(e.Unexpected, g)
		}
	}
	if len(e.Missing)+len(e.Unexpected)+len(e.Mismatched) == 0 {
		return nil
	}
	return e
}

// CheckPredictor checks a predictor state_dict strictly, as the hub loader does (spec §9.5).
func CheckPredictor(source string, c PredictorConfig, got []TensorInfo) error {
	return CheckTensors(source, PredictorTensors(c), cleanInfos(got), nil)
}

// CheckEncoder checks an encoder state_dict, ignoring the pos_embed that base checkpoints carry though
// RoPE never reads it (spec §9.3); unlike the hub's strict=False we insist on every other name (§9.5).
func CheckEncoder(source string, c EncoderConfig, got []TensorInfo) error {
	return CheckTensors(source, EncoderTensors(c), cleanInfos(got), func(n string) bool { return n == "pos_embed" })
}

func cleanInfos(infos []TensorInfo) []TensorInfo {
	out := make([]TensorInfo, len(infos))
	for i, in := range infos {
		out[i] = in
		out[i].Name = CleanKey(in.Name)
	}
	return out
}

// StateDict is one module's tensors under cleaned names (spec §9.3), in file order, ready to be checked
// and read one at a time.
type StateDict struct {
	Source string
	Names  []string             // cleaned names, file order
	Refs   map[string]TensorRef // by cleaned name; Info().Name is the cleaned name
	closer io.Closer
}

// renamed gives a TensorRef its cleaned name.
type renamed struct {
	TensorRef
	name string
}

func (r renamed) Info() TensorInfo {
	i := r.TensorRef.Info()
	i.Name = r.name
	return i
}

// NewStateDict cleans the names of refs; two stored names that clean to the same name are an error.
func NewStateDict(source string, refs []TensorRef) (*StateDict, error) {
	s := &StateDict{Source: source, Refs: make(map[string]TensorRef, len(refs))}
	raw := make(map[string]string, len(refs))
	for _, r := range refs {
		stored := r.Info().Name
		name := CleanKey(stored)
		if prev, dup := raw[name]; dup {
			return nil, fmt.Errorf("model: load %s: %q and %q are both %q after removing module./backbone.", source, prev, stored, name)
		}
		raw[name] = stored
		s.Names = append(s.Names, name)
		s.Refs[name] = renamed{r, name}
	}
	return s, nil
}

// OpenStateDict opens one module's weights from a torch.save archive (the state_dict under key) or a
// safetensors file (the tensors named "<key>.*" with that prefix removed when any exist, as
// `vjepa-vk convert --key all` writes them; otherwise every tensor). The file stays open until Close.
func OpenStateDict(path, key string) (*StateDict, error) {
	if strings.HasSuffix(path, ".safetensors") {
		st, err := OpenSafetensors(path)
		if err != nil {
			return nil, err
		}
		refs := st.Refs()
		if key != "" {
			var sel []TensorRef
			for _, r := range refs {
				if rest, ok := strings.CutPrefix(r.Info().Name, key+"."); ok {
					sel = append(sel, renamed{r, rest})
				}
			}
			if len(sel) > 0 {
				refs = sel
			}
		}
		s, err := NewStateDict(path, refs)
		if err != nil {
			st.Close()
			return nil, err
		}
		s.closer = st
		return s, nil
	}
	tf, err := OpenTorch(path)
	if err != nil {
		return nil, err
	}
	tensors, err := tf.StateDict(key)
	if err != nil {
		tf.Close()
		return nil, err
	}
	refs := make([]TensorRef, len(tensors))
	for i, t := range tensors {
		refs[i] = t
	}
	s, err := NewStateDict(path, refs)
	if err != nil {
		tf.Close()
		return nil, err
	}
	s.closer = tf
	return s, nil
}

// Infos lists the tensors (cleaned names) in file order.
func (s *StateDict) Infos() []TensorInfo {
	out := make([]TensorInfo, len(s.Names))
	for i, n := range s.Names {
		out[i] = s.Refs[n].Info()
	}
	return out
}

// ReadFloat32 reads one tensor by cleaned name.
func (s *StateDict) ReadFloat32(name string) ([]float32, error) {
	r, ok := s.Refs[name]
	if !ok {
		return nil, fmt.Errorf("model: load %s: no tensor %q", s.Source, name)
	}
	return r.ReadFloat32()
}

// Close closes the underlying file.
func (s *StateDict) Close() error {
	if s.closer == nil {
		return nil
	}
	err := s.closer.Close()
	s.closer = nil
	return err
}
