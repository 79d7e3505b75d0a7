package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// Fixture tolerances of the verify contract (fixtures/README.md): fp32 relative error, measured as
// max|got − want| / max|want| over a tensor (so near-zero elements do not dominate).
const (
	TensorTol = 1e-3
	LossTol   = 1e-4
)

// VerifyResult is one compared output.
type VerifyResult struct {
	MaxAbs float64 `json:"max_abs_err"`
	MaxRel float64 `json:"max_rel_err"`
	Tol    float64 `json:"tol"`
	Abs    bool    `json:"abs_tol,omitempty"` // Tol bounds MaxAbs (plan fixtures' actions and poses), not MaxRel
	OK     bool    `json:"ok"`
}

// VerifyReport is what `vjepa-vk verify` prints.
type VerifyReport struct {
	Case    string                  `json:"case"`
	Device  string                  `json:"device"`
	Results map[string]VerifyResult `json:"results"`
	OK      bool                    `json:"ok"`
}

type fixtureCase struct {
	Case   string          `json:"case"`
	Kind   string          `json:"kind"` // "plan" for planning cases; AC and encoder cases have none
	Config json.RawMessage `json:"config"`
	Batch  int             `json:"batch"`
}

type acFixtureConfig struct {
	EmbedDim   int      `json:"embed_dim"`
	PredDim    int      `json:"pred_dim"`
	Depth      int      `json:"depth"`
	Heads      int      `json:"heads"`
	Img        int      `json:"img"`
	T          int      `json:"T"`
	Extrinsics bool     `json:"extrinsics"`
	R          int      `json:"r"`
	Alpha      float64  `json:"alpha"`
	Targets    []string `json:"targets"`
	AutoSteps  int      `json:"auto_steps"`
}

type encFixtureConfig struct {
	Dim       int   `json:"dim"`
	Depth     int   `json:"depth"`
	Heads     int   `json:"heads"`
	Img       []int `json:"img"`
	Frames    int   `json:"frames"`
	MLPHidden int   `json:"mlp_hidden"`
}

// fixture is one case folder: case.json, case.safetensors, checkpoint.pt.
type fixture struct {
	dir     string
	meta    fixtureCase
	raw     map[string]json.RawMessage
	tensors *model.Safetensors
}

func openFixture(dir string) (*fixture, error) {
	js, err := os.ReadFile(filepath.Join(dir, "case.json"))
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	f := &fixture{dir: dir}
	if err := json.Unmarshal(js, &f.meta); err != nil {
		return nil, fmt.Errorf("verify: %s: %w", filepath.Join(dir, "case.json"), err)
	}
	if err := json.Unmarshal(js, &f.raw); err != nil {
		return nil, fmt.Errorf("verify: %s: %w", filepath.Join(dir, "case.json"), err)
	}
	if f.tensors, err = model.OpenSafetensors(filepath.Join(dir, "case.safetensors")); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return f, nil
}

func (f *fixture) tensor(name string) ([]float32, []int, error) {
	t, ok := f.tensors.Tensor(name)
	if !ok {
		return nil, nil, fmt.Errorf("verify: %s: no tensor %q", filepath.Join(f.dir, "case.safetensors"), name)
	}
	v, err := t.ReadFloat32()
	return v, t.Info().Shape, err
}

// compare computes the errors of got against want and records them under name.
func (r *VerifyReport) compare(name string, got, want []float32, tol float64) {
	var maxAbs, maxWant float64
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		maxAbs = math.Max(maxAbs, d)
		maxWant = math.Max(maxWant, math.Abs(float64(want[i])))
	}
	if len(got) != len(want) {
		maxAbs = math.Inf(1)
	}
	rel := maxAbs / math.Max(maxWant, 1e-30)
	res := VerifyResult{MaxAbs: maxAbs, MaxRel: rel, Tol: tol, OK: rel <= tol}
	r.Results[name] = res
	if !res.OK {
		r.OK = false
	}
}

// VerifyFixture runs one fixture folder on d in fp32 and compares every output, loss and gradient.
func VerifyFixture(d *vk.Device, dir string) (*VerifyReport, error) {
	f, err := openFixture(dir)
	if err != nil {
		return nil, err
	}
	defer f.tensors.Close()
	rep := &VerifyReport{Case: f.meta.Case, Device: d.Info.Name, Results: map[string]VerifyResult{}, OK: true}
	if rep.Case == "" {
		rep.Case = filepath.Base(dir)
	}
	if _, ok := f.tensors.Tensor("inputs.video"); ok {
		err = verifyEncoder(d, f, rep)
	} else if f.meta.Kind == "plan" {
		err = verifyPlan(d, f, rep)
	} else {
		err = verifyPredictor(d, f, rep)
	}
	if err != nil {
		return nil, err
	}
	return rep, nil
}

func verifyEncoder(d *vk.Device, f *fixture, rep *VerifyReport) error {
	var c encFixtureConfig
	if err := json.Unmarshal(f.meta.Config, &c); err != nil {
		return fmt.Errorf("verify: %s/case.json: config: %w", f.dir, err)
	}
	if len(c.Img) != 2 {
		return fmt.Errorf("verify: %s/case.json: config.img: want [H, W], got %v", f.dir, c.Img)
	}
	cfg := model.NewEncoderConfig(c.Dim, c.Depth, c.Heads)
	var hidden int
	if raw, ok := f.raw["mlp_hidden"]; ok && json.Unmarshal(raw, &hidden) == nil && hidden > 0 {
		cfg.MLPHidden = hidden
	}
	sd, err := model.OpenStateDict(filepath.Join(f.dir, "checkpoint.pt"), "encoder")
	if err != nil {
		return err
	}
	defer sd.Close()
	if err := model.CheckEncoder(sd.Source, cfg, sd.Infos()); err != nil {
		return err
	}
	enc, err := model.LoadEncoder(d, cfg, sd, model.FP32)
	if err != nil {
		return err
	}
	defer enc.Free()
	video, shape, err := f.tensor("inputs.video")
	if err != nil {
		return err
	}
	ep, err := enc.NewPass(shape[0], shape[2], shape[3], shape[4])
	if err != nil {
		return err
	}
	defer ep.Free()
	if err := d.Upload(ep.Video, video); err != nil {
		return err
	}
	s, err := d.NewStream(false)
	if err != nil {
		return err
	}
	defer s.Destroy()
	ep.Forward(s)
	if err := s.Run(); err != nil {
		return err
	}
	for _, o := range []struct {
		name string
		t    vk.Tensor
	}{{"encoder", ep.Out}, {"encoder_ln", ep.OutLN}} {
		want, _, err := f.tensor("outputs." + o.name)
		if err != nil {
			return err
		}
		got, err := d.Download(o.t)
		if err != nil {
			return err
		}
		rep.compare(o.name, got, want, TensorTol)
	}
	return nil
}

func verifyPredictor(d *vk.Device, f *fixture, rep *VerifyReport) error {
	var c acFixtureConfig
	if err := json.Unmarshal(f.meta.Config, &c); err != nil {
		return fmt.Errorf("verify: %s/case.json: config: %w", f.dir, err)
	}
	if c.Img%16 != 0 || c.Img <= 0 {
		return fmt.Errorf("verify: %s/case.json: config.img %d: want a positive multiple of 16", f.dir, c.Img)
	}
	if c.AutoSteps == 0 {
		c.AutoSteps = min(2, c.T-1)
	}
	cfg := model.PredictorConfig{EmbedDim: c.EmbedDim, Dim: c.PredDim, Depth: c.Depth, Heads: c.Heads,
		Grid: c.Img / 16, MLPRatio: 4, Extrinsics: c.Extrinsics}
	p, err := f.loadPredictor(d, cfg)
	if err != nil {
		return err
	}
	defer p.Free()
	B := f.meta.Batch
	features, _, err := f.tensor("inputs.features")
	if err != nil {
		return err
	}
	states, _, err := f.tensor("inputs.states")
	if err != nil {
		return err
	}
	var extr []float32
	if c.Extrinsics {
		if extr, _, err = f.tensor("inputs.extrinsics"); err != nil {
			return err
		}
	}
	s, err := d.NewStream(false)
	if err != nil {
		return err
	}
	defer s.Destroy()

	// forward_full: all T frames, T actions, no LoRA, no outer LayerNorm.
	if want, _, err := f.tensor("outputs.forward_full"); err == nil {
		actionsFull, _, err := f.tensor("inputs.actions_full")
		if err != nil {
			return err
		}
		ps, err := p.NewPass(B, c.T, false)
		if err != nil {
			return err
		}
		up := []struct {
			t vk.Tensor
			v []float32
		}{{ps.Z, features}, {ps.Actions, actionsFull}, {ps.States, states}}
		if c.Extrinsics {
			up = append(up, struct {
				t vk.Tensor
				v []float32
			}{ps.Extrinsics, extr})
		}
		for _, u := range up {
			if err := d.Upload(u.t, u.v); err != nil {
				ps.Free()
				return err
			}
		}
		ps.Forward(s)
		err = s.Run()
		var got []float32
		if err == nil {
			got, err = d.Download(ps.Out)
		}
		ps.Free()
		if err != nil {
			return err
		}
		rep.compare("forward_full", got, want, TensorTol)
		if err := s.Reset(); err != nil {
			return err
		}
	}

	// Losses and LoRA gradients with the fixture's adapters.
	if err := p.AddLoRA(model.LoRAConfig{R: c.R, Alpha: c.Alpha, Targets: c.Targets, RSLoRA: true}); err != nil {
		return err
	}
	for _, a := range p.LoRAs {
		for _, w := range []struct {
			suffix string
			t      vk.Tensor
		}{{"lora_A", a.A}, {"lora_B", a.B}} {
			v, _, err := f.tensor("lora.base_model.model." + a.Module + "." + w.suffix + ".weight")
			if err != nil {
				return err
			}
			if err := d.Upload(w.t, v); err != nil {
				return err
			}
		}
	}
	g, err := NewLossGraph(p, B, c.T, c.AutoSteps, false)
	if err != nil {
		return err
	}
	defer g.Free()
	actions, _, err := f.tensor("inputs.actions")
	if err != nil {
		return err
	}
	for _, u := range []struct {
		t vk.Tensor
		v []float32
	}{{g.Features, features}, {g.Actions, actions}, {g.States, states}, {g.DLoss, []float32{1}}} {
		if err := d.Upload(u.t, u.v); err != nil {
			return err
		}
	}
	if c.Extrinsics {
		if err := d.Upload(g.Extrinsics, extr); err != nil {
			return err
		}
	}
	// The predictions first, from a forward alone: a step's backward reuses their memory.
	g.Forward(s)
	if err := s.Run(); err != nil {
		return err
	}
	down := func(t vk.Tensor) ([]float32, error) { return d.Download(t) }
	for _, o := range []struct {
		name string
		t    vk.Tensor
	}{{"z_tf", g.ZTF}, {"z_ar", g.ZAR}} {
		want, _, err := f.tensor("outputs." + o.name)
		if err != nil {
			return err
		}
		got, err := down(o.t)
		if err != nil {
			return err
		}
		rep.compare(o.name, got, want, TensorTol)
	}
	if err := s.Reset(); err != nil {
		return err
	}
	ZeroGrads(s, p)
	g.Forward(s)
	g.Backward(s)
	if err := s.Run(); err != nil {
		return err
	}
	ltf, err := down(g.LossTF)
	if err != nil {
		return err
	}
	lar, err := down(g.LossAR)
	if err != nil {
		return err
	}
	for _, l := range []struct {
		name string
		v    float32
	}{{"loss_tf", ltf[0]}, {"loss_rollout", lar[0]}, {"loss", ltf[0] + lar[0]}} {
		want, _, err := f.tensor("outputs." + l.name)
		if err != nil {
			if l.name == "loss" {
				return err
			}
			continue
		}
		rep.compare(l.name, []float32{l.v}, want, LossTol)
	}
	for _, a := range p.LoRAs {
		for _, w := range []struct {
			suffix string
			t      vk.Tensor
		}{{"lora_A", a.GradA}, {"lora_B", a.GradB}} {
			key := a.Module + "." + w.suffix + ".weight"
			want, _, err := f.tensor("grad.base_model.model." + key)
			if err != nil {
				return err
			}
			got, err := down(w.t)
			if err != nil {
				return err
			}
			rep.compare("grad."+key, got, want, TensorTol)
		}
	}
	return nil
}

// loadPredictor loads the fixture's checkpoint.pt predictor of cfg in fp32.
func (f *fixture) loadPredictor(d *vk.Device, cfg model.PredictorConfig) (*model.Predictor, error) {
	sd, err := model.OpenStateDict(filepath.Join(f.dir, "checkpoint.pt"), "predictor")
	if err != nil {
		return nil, err
	}
	defer sd.Close()
	if err := model.CheckPredictor(sd.Source, cfg, sd.Infos()); err != nil {
		return nil, err
	}
	return model.LoadPredictor(d, cfg, sd, model.FP32)
}
