package model_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/model/modeltest"
	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// rolloutInputs are seeded inputs of a rollout: z_0 and goals already layer-normed, as the planner
// passes them; actions and states [H, S, 7] (extrinsics [H, S, 6]).
type rolloutInputs struct {
	context, goals, actions, states, extrinsics []float32
}

func newRolloutInputs(c model.PredictorConfig, S, H int) rolloutInputs {
	HW, E := c.Grid*c.Grid, c.EmbedDim
	in := rolloutInputs{
		context: layerNorm0(vktest.RandN(81, HW*E), E),
		goals:   layerNorm0(vktest.RandN(82, H*HW*E), E),
		actions: vktest.RandN(83, H*S*c.ActionIn()),
		states:  vktest.RandN(84, H*S*c.StateIn()),
	}
	if c.Extrinsics {
		in.extrinsics = vktest.RandN(85, H*S*model.ExtrinsicsDim)
	}
	return in
}

// layerNorm0 is the parameter-free LayerNorm (eps 1e-5) over rows of width w, in float64 (ref.LayerNorm).
func layerNorm0(v []float32, w int) []float32 {
	rows := len(v) / w
	y := make([]float64, rows*w)
	ref.LayerNorm(y, make([]float64, rows), make([]float64, rows), vktest.F64(v[:rows*w]), nil, nil, rows, w, 1e-5)
	return vktest.F32(y)
}

// runRollout scores the inputs with a rollout of rc on p and returns the energies [H, S].
func runRollout(t *testing.T, p *model.Predictor, rc model.RolloutConfig, in rolloutInputs) []float32 {
	t.Helper()
	d := p.Device()
	r, err := p.NewRollout(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Free()
	for _, u := range []struct {
		t vk.Tensor
		v []float32
	}{{r.Context, in.context}, {r.Goals, in.goals}, {r.Actions, in.actions}, {r.States, in.states}, {r.Extrinsics, in.extrinsics}} {
		if u.v == nil {
			continue
		}
		if err := d.Upload(u.t, u.v); err != nil {
			t.Fatal(err)
		}
	}
	s := vktest.Stream(t, d)
	r.Record(s)
	vktest.Run(t, s)
	return vktest.Download(t, d, r.Energies)
}

// passEnergies computes the rollout's energies [H, S] with the training passes (verified against the
// official code by the fixtures): step h runs a Pass over frames 0..h of every candidate, the frames after
// z_0 being the previous steps' outputs after LN₀ (on the host), and compares the last frame with the goal.
func passEnergies(t *testing.T, p *model.Predictor, S, H int, in rolloutInputs) []float64 {
	t.Helper()
	d, c := p.Device(), p.Cfg
	HW, E := c.Grid*c.Grid, c.EmbedDim
	frames := [][]float32{} // per candidate, the frames so far [T·HW·E]
	for range S {
		frames = append(frames, append([]float32(nil), in.context...))
	}
	energies := make([]float64, H*S)
	row := func(v []float32, w, h, s int) []float32 { return v[(h*S+s)*w : (h*S+s+1)*w] }
	for h := range H {
		T := h + 1
		ps, err := p.NewPass(S, T, false)
		if err != nil {
			t.Fatal(err)
		}
		var z, a, st, ex []float32
		for s := range S {
			z = append(z, frames[s]...)
			for f := range T {
				a = append(a, row(in.actions, c.ActionIn(), f, s)...)
				st = append(st, row(in.states, c.StateIn(), f, s)...)
				if c.Extrinsics {
					ex = append(ex, row(in.extrinsics, model.ExtrinsicsDim, f, s)...)
				}
			}
		}
		up := []struct {
			t vk.Tensor
			v []float32
		}{{ps.Z, z}, {ps.Actions, a}, {ps.States, st}}
		if c.Extrinsics {
			up = append(up, struct {
				t vk.Tensor
				v []float32
			}{ps.Extrinsics, ex})
		}
		for _, u := range up {
			if err := d.Upload(u.t, u.v); err != nil {
				t.Fatal(err)
			}
		}
		strm := vktest.Stream(t, d)
		ps.Forward(strm)
		vktest.Run(t, strm)
		out := vktest.Download(t, d, ps.Out)
		ps.Free()
		goal := in.goals[h*HW*E : (h+1)*HW*E]
		for s := range S {
			next := layerNorm0(out[((s*T)+h)*HW*E:((s*T)+h+1)*HW*E], E)
			sum := 0.0
			for i, v := range next {
				sum += math.Abs(float64(v) - float64(goal[i]))
			}
			energies[h*S+s] = sum / float64(HW*E)
			frames[s] = append(frames[s], next...)
		}
	}
	return energies
}

var rolloutConfigs = []model.PredictorConfig{
	{EmbedDim: 48, Dim: 64, Depth: 2, Heads: 2, Grid: 3, MLPRatio: 4},
	{EmbedDim: 40, Dim: 72, Depth: 2, Heads: 3, Grid: 2, MLPRatio: 4, Extrinsics: true},          // head dim 24, K = 3
	{EmbedDim: 32, Dim: 64, Depth: 1, Heads: 2, Grid: 2, MLPRatio: 4, ActionDim: 4, StateDim: 6}, // a LeRobot robot
}

// TestRollout checks the inference path's energies against the training passes, with and without the
// K/V cache, at horizons 1 to 3, and that the cache and the chunk size change them by rounding only.
func TestRollout(t *testing.T) {
	d := vktest.Device(t)
	for _, cfg := range rolloutConfigs {
		p := modeltest.Predictor(t, d, cfg, model.FP32, &model.LoRAConfig{R: 2, Alpha: 4, RSLoRA: true}, false)
		for _, H := range []int{1, 2, 3} {
			const S = 5
			in := newRolloutInputs(cfg, S, H)
			want := passEnergies(t, p, S, H, in)
			var first []float32
			for _, cache := range []bool{false, true} {
				for _, chunk := range []int{0, 2, 1} {
					name := vktest.Name("dim", cfg.Dim, "ext", cfg.Extrinsics, "A", cfg.ActionIn(), "H", H, "cache", cache, "chunk", chunk)
					t.Run(name, func(t *testing.T) {
						got := runRollout(t, p, model.RolloutConfig{Samples: S, Horizon: H, Chunk: chunk, KVCache: cache}, in)
						// The training passes in f32 and LN₀ on the host in float64: energies (means of O(1)
						// terms) agree to f32 rounding of the whole predictor.
						vktest.Close(t, "Rollout energies vs passes", got, want, 1e-5, 1e-6)
						if first == nil {
							first = got
							return
						}
						// Cache and chunking reorder nothing inside a candidate's sums but the GEMM tiling
						// and attention tiles: agreement to a few ulp.
						vktest.Close(t, "Rollout energies vs uncached whole batch", got, vktest.F64(first), 2e-6, 0)
					})
				}
			}
		}
	}
}

// perSampleInputs are S candidates with their own context [S, HW, E] and goals [H, S, HW, E].
func perSampleInputs(c model.PredictorConfig, S, H int) rolloutInputs {
	in := newRolloutInputs(c, S, H)
	HW, E := c.Grid*c.Grid, c.EmbedDim
	in.context = layerNorm0(vktest.RandN(86, S*HW*E), E)
	in.goals = layerNorm0(vktest.RandN(87, H*S*HW*E), E)
	return in
}

// candidate returns candidate s of per-sample inputs as the inputs of a one-candidate rollout.
func (in rolloutInputs) candidate(c model.PredictorConfig, S, H, s int) rolloutInputs {
	F := c.Grid * c.Grid * c.EmbedDim
	pick := func(v []float32, w int) []float32 {
		var out []float32
		for h := range H {
			out = append(out, v[(h*S+s)*w:(h*S+s+1)*w]...)
		}
		return out
	}
	one := rolloutInputs{context: in.context[s*F : (s+1)*F], goals: pick(in.goals, F),
		actions: pick(in.actions, c.ActionIn()), states: pick(in.states, c.StateIn())}
	if in.extrinsics != nil {
		one.extrinsics = pick(in.extrinsics, model.ExtrinsicsDim)
	}
	return one
}

// teacherForcedEnergies runs one training Pass over frames [context_s, goal_0,s .. goal_{H−2},s] of
// every candidate (spec §6.2's teacher forcing) and returns the L1 energy [H, S] of each output frame h
// (after LN₀, on the host) against goal h.
func teacherForcedEnergies(t *testing.T, p *model.Predictor, S, H int, in rolloutInputs) []float64 {
	t.Helper()
	d, c := p.Device(), p.Cfg
	F := c.Grid * c.Grid * c.EmbedDim
	ps, err := p.NewPass(S, H, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Free()
	var z, a, st []float32
	for s := range S {
		z = append(z, in.context[s*F:(s+1)*F]...)
		for h := range H {
			if h > 0 {
				z = append(z, in.goals[((h-1)*S+s)*F:((h-1)*S+s+1)*F]...)
			}
			a = append(a, in.actions[(h*S+s)*c.ActionIn():(h*S+s+1)*c.ActionIn()]...)
			st = append(st, in.states[(h*S+s)*c.StateIn():(h*S+s+1)*c.StateIn()]...)
		}
	}
	for _, u := range []struct {
		t vk.Tensor
		v []float32
	}{{ps.Z, z}, {ps.Actions, a}, {ps.States, st}} {
		if err := d.Upload(u.t, u.v); err != nil {
			t.Fatal(err)
		}
	}
	strm := vktest.Stream(t, d)
	ps.Forward(strm)
	vktest.Run(t, strm)
	out := vktest.Download(t, d, ps.Out)
	e := make([]float64, H*S)
	for s := range S {
		for h := range H {
			next := layerNorm0(out[(s*H+h)*F:(s*H+h+1)*F], c.EmbedDim)
			goal := in.goals[(h*S+s)*F : (h*S+s+1)*F]
			for i, v := range next {
				e[h*S+s] += math.Abs(float64(v)-float64(goal[i])) / float64(F)
			}
		}
	}
	return e
}

// TestRolloutPerSample checks candidates with their own context and goals (evaluation over many clips):
// each candidate's energies are those of a rollout of it alone, and with teacher forcing they are the
// errors of one training Pass over the true frames (spec §6.2), with and without the cache, in chunks.
func TestRolloutPerSample(t *testing.T) {
	d := vktest.Device(t)
	for _, cfg := range []model.PredictorConfig{rolloutConfigs[0], rolloutConfigs[2]} {
		p := modeltest.Predictor(t, d, cfg, model.FP32, &model.LoRAConfig{R: 2, Alpha: 4}, false)
		for _, H := range []int{1, 3} {
			const S = 4
			in := perSampleInputs(cfg, S, H)
			alone := make([]float64, H*S)
			for s := range S {
				e := runRollout(t, p, model.RolloutConfig{Samples: 1, Horizon: H, KVCache: true}, in.candidate(cfg, S, H, s))
				for h := range H {
					alone[h*S+s] = float64(e[h])
				}
			}
			tf := teacherForcedEnergies(t, p, S, H, in)
			for _, cache := range []bool{false, true} {
				for _, chunk := range []int{0, 3} {
					rc := model.RolloutConfig{Samples: S, Horizon: H, Chunk: chunk, KVCache: cache, PerSample: true}
					t.Run(vktest.Name("A", cfg.ActionIn(), "H", H, "cache", cache, "chunk", chunk), func(t *testing.T) {
						got := runRollout(t, p, rc, in)
						// The same candidate alone or among others: GEMM tiling and attention tiles only.
						vktest.Close(t, "per-sample rollout vs each candidate alone", got, alone, 2e-6, 1e-7)
						rc.TeacherForcing = true
						got = runRollout(t, p, rc, in)
						vktest.Close(t, "teacher-forced rollout vs one pass over the true frames", got, tf, 1e-5, 1e-6)
						if H > 1 && math.Abs(float64(got[S])-alone[S]) < 1e-6 {
							t.Errorf("teacher forcing changes the step-1 energy by only %g", float64(got[S])-alone[S])
						}
					})
				}
			}
		}
	}
}

// TestRolloutBytes checks that planning the memory counts what NewRollout allocates, and that a chunk
// fits its budget.
func TestRolloutBytes(t *testing.T) {
	cfg := rolloutConfigs[0]
	lora := model.LoRAConfig{R: 2, Alpha: 4}
	for _, cache := range []bool{false, true} {
		rc := model.RolloutConfig{Samples: 40, Horizon: 3, KVCache: cache}
		full, err := model.RolloutBytes(cfg, lora, rc)
		if err != nil {
			t.Fatal(err)
		}
		rc.Chunk = 7
		seven, err := model.RolloutBytes(cfg, lora, rc)
		if err != nil {
			t.Fatal(err)
		}
		if !(seven < full) {
			t.Errorf("cache %v: chunk 7 takes %d bytes, all 40 %d: want fewer", cache, seven, full)
		}
		c, err := model.ChunkForBudget(cfg, lora, rc, seven)
		if err != nil || c != 7 {
			t.Errorf("cache %v: ChunkForBudget(budget of chunk 7) = %d, %v; want 7", cache, c, err)
		}
		if _, err := model.ChunkForBudget(cfg, lora, rc, 1000); err == nil {
			t.Errorf("cache %v: a 1000-byte budget fit a rollout", cache)
		}
	}
}

func ExampleRolloutConfig() {
	fmt.Println(model.RolloutConfig{Samples: 400, Horizon: 2, Chunk: 100, KVCache: true}.Validate())
	fmt.Println(model.RolloutConfig{Samples: 0, Horizon: 2}.Validate())
	// Output:
	// <nil>
	// model: rollout of 0 samples over 2 steps in chunks of 0: samples and horizon must be >= 1, chunk >= 0
}

// testAdapters returns seeded adapters of rank r on every target of every block of cfg.
func testAdapters(cfg model.PredictorConfig, r int) (model.AdapterConfig, []model.LoRAWeights) {
	return model.NewAdapterConfig(r, 2*float64(r), true, []string{"qkv", "proj", "fc1", "fc2"}, "test"), modeltest.LoRAWeights(cfg, r, 100)
}

// TestRolloutAdaptersAndPrecision scores the same candidates with adapters fused (LoadAdapters) and
// merged into the weights (MergedWeights), and with fp16 and bf16 base weights.
func TestRolloutAdaptersAndPrecision(t *testing.T) {
	d := vktest.Device(t)
	cfg := rolloutConfigs[0]
	ac, mods := testAdapters(cfg, 3)
	load := func(src model.WeightSource, prec model.Precision, fused bool) *model.Predictor {
		p, err := model.LoadPredictor(d, cfg, src, prec)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Free)
		if fused {
			if err := p.LoadAdapters(ac, mods); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	base := model.InitPredictor(cfg, 5)
	rc := model.RolloutConfig{Samples: 4, Horizon: 2, KVCache: true}
	in := newRolloutInputs(cfg, rc.Samples, rc.Horizon)
	fused := runRollout(t, load(base, model.FP32, true), rc, in)
	merged := runRollout(t, load(model.NewMergedWeights(base, ac, mods), model.FP32, false), rc, in)
	// Folding B·A into W changes only the rounding of each product.
	vktest.Close(t, "merged vs fused adapters", merged, vktest.F64(fused), 1e-5, 0)
	plain := runRollout(t, load(base, model.FP32, false), rc, in)
	if math.Abs(float64(plain[0]-fused[0])) < 1e-4 {
		t.Errorf("adapters change energy 0 by only %g: the test adapters do nothing", plain[0]-fused[0])
	}
	for _, prec := range []model.Precision{model.FP16, model.BF16} {
		got := runRollout(t, load(base, prec, true), rc, in)
		// 16-bit weights (bf16: 8 mantissa bits) move the normalized frames by ~1e-2 at most.
		vktest.Close(t, fmt.Sprintf("%s weights vs fp32", prec), got, vktest.F64(fused), 2e-2, 0)
	}
}

func TestLoadAdaptersBadInput(t *testing.T) {
	d := vktest.Device(t)
	cfg := rolloutConfigs[0]
	ac, mods := testAdapters(cfg, 2)
	for _, c := range []struct {
		name string
		edit func([]model.LoRAWeights) []model.LoRAWeights
		want string
	}{
		{"missing module", func(m []model.LoRAWeights) []model.LoRAWeights { return m[1:] }, "no weights for predictor_blocks.0.attn.qkv"},
		{"wrong shape", func(m []model.LoRAWeights) []model.LoRAWeights {
			m[0].In, m[0].A = m[0].In-1, m[0].A[:len(m[0].A)-2]
			return m
		}, "the predictor wants"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := model.LoadPredictor(d, cfg, model.InitPredictor(cfg, 5), model.FP32)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Free()
			err = p.LoadAdapters(ac, c.edit(append([]model.LoRAWeights(nil), mods...)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("LoadAdapters: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// BenchmarkRollout scores candidates at the demo's sizes (configs/demo.yaml: 2 blocks, width 96, 4×4
// patches) for several sample counts and horizons, with and without the K/V cache: one op is one scoring
// of all candidates (one CEM iteration).
func BenchmarkRollout(b *testing.B) {
	d := vktest.Device(b)
	cfg := model.PredictorConfig{EmbedDim: 64, Dim: 96, Depth: 2, Heads: 2, Grid: 4, MLPRatio: 4}
	p, err := model.LoadPredictor(d, cfg, model.InitPredictor(cfg, 5), model.FP32)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Free()
	for _, S := range []int{32, 128} {
		for _, H := range []int{1, 2, 3} {
			for _, cache := range []bool{false, true} {
				if H == 1 && cache {
					continue // one step: nothing to cache
				}
				b.Run(fmt.Sprintf("samples=%d/horizon=%d/cache=%v", S, H, cache), func(b *testing.B) {
					r, err := p.NewRollout(model.RolloutConfig{Samples: S, Horizon: H, KVCache: cache})
					if err != nil {
						b.Fatal(err)
					}
					defer r.Free()
					in := newRolloutInputs(cfg, S, H)
					for _, u := range []struct {
						t vk.Tensor
						v []float32
					}{{r.Context, in.context}, {r.Goals, in.goals}, {r.Actions, in.actions}, {r.States, in.states}} {
						if err := d.Upload(u.t, u.v); err != nil {
							b.Fatal(err)
						}
					}
					s := vktest.Stream(b, d)
					r.Record(s)
					vktest.Run(b, s) // compile the pipelines
					for b.Loop() {
						vktest.Run(b, s)
					}
					b.ReportMetric(float64(S*b.N)/b.Elapsed().Seconds(), "candidates/s")
				})
			}
		}
	}
}
