package train_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/train"
	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// lossResults runs the objective once as a forward alone (reading z_tf and z_ar) and once as a whole step
// (losses and adapter gradients), on seeded inputs, with or without lifetime checks.
func lossResults(t *testing.T, d *vk.Device, cfg model.PredictorConfig, B, T, k int, checkpoint bool, dropout float64, check bool) [][]float32 {
	t.Helper()
	p, err := model.LoadPredictor(d, cfg, model.InitPredictor(cfg, 7), model.FP32)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	p.CheckLifetimes(check)
	if err := p.AddLoRA(model.LoRAConfig{R: 3, Alpha: 6, RSLoRA: true, Seed: 3, Dropout: dropout}); err != nil {
		t.Fatal(err)
	}
	for i, a := range p.LoRAs {
		if err := d.Upload(a.B, vktest.Rand(uint64(100+i), a.B.Numel())); err != nil {
			t.Fatal(err)
		}
	}
	p.SetTraining(true)
	if seed := p.DropoutSeed(); seed.Valid() {
		if err := d.WriteBytes(seed, []byte{7, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
	}
	g, err := train.NewLossGraph(p, B, T, k, checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free()
	HW := cfg.Grid * cfg.Grid
	in := []struct {
		t vk.Tensor
		v []float32
	}{{g.Features, vktest.RandN(1, B*T*HW*cfg.EmbedDim)}, {g.Actions, vktest.Rand(2, B*(T-1)*7)},
		{g.States, vktest.Rand(3, B*T*7)}, {g.DLoss, []float32{1}}}
	if cfg.Extrinsics {
		in = append(in, struct {
			t vk.Tensor
			v []float32
		}{g.Extrinsics, vktest.Rand(4, B*T*6)})
	}
	for i, u := range in {
		if err := d.Upload(u.t, u.v); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	fwd := vktest.Stream(t, d)
	g.Forward(fwd)
	vktest.Run(t, fwd)
	out := [][]float32{vktest.Download(t, d, g.ZTF), vktest.Download(t, d, g.ZAR)}
	step := vktest.Stream(t, d)
	train.ZeroGrads(step, p)
	g.Forward(step)
	g.Backward(step)
	vktest.Run(t, step)
	out = append(out, vktest.Download(t, d, g.LossTF), vktest.Download(t, d, g.LossAR))
	for _, a := range p.LoRAs {
		out = append(out, vktest.Download(t, d, a.GradA), vktest.Download(t, d, a.GradB))
	}
	return out
}

// TestLossGraphLifetimes runs the training objective with its tensors sharing memory by lifetime and
// with lifetime checks (nothing shared, every tensor NaN outside its declared lifetime: see
// model.CheckLifetimes), over the graph's shapes of timeline: with and without checkpointing, dropout,
// extrinsics, one and two rollout passes. The results must agree bit for bit.
func TestLossGraphLifetimes(t *testing.T) {
	d := vktest.Device(t)
	for _, c := range []struct {
		checkpoint, extrinsics bool
		k                      int
		dropout                float64
	}{{false, false, 2, 0}, {true, false, 2, 0.3}, {true, true, 3, 0}, {false, true, 3, 0.3}, {true, false, 1, 0}} {
		t.Run(vktest.Name("checkpoint", c.checkpoint, "extrinsics", c.extrinsics, "k", c.k, "dropout", c.dropout), func(t *testing.T) {
			cfg := smallConfig()
			cfg.Extrinsics = c.extrinsics
			shared := lossResults(t, d, cfg, 2, 4, c.k, c.checkpoint, c.dropout, false)
			checked := lossResults(t, d, cfg, 2, 4, c.k, c.checkpoint, c.dropout, true)
			for i := range checked {
				for j := range checked[i] {
					if math.Float32bits(shared[i][j]) != math.Float32bits(checked[i][j]) {
						t.Fatalf("result %d[%d] = %v with shared memory, %v with lifetime checks", i, j, shared[i][j], checked[i][j])
					}
				}
			}
		})
	}
}

// TestLossGraphPlanMatchesAllocator checks that a planning predictor counts exactly the bytes a real loss
// graph takes from the allocator.
func TestLossGraphPlanMatchesAllocator(t *testing.T) {
	d := vktest.Device(t)
	cfg := smallConfig()
	lc := model.LoRAConfig{R: 3, Alpha: 6, Dropout: 0.1}
	for _, checkpoint := range []bool{false, true} {
		t.Run(vktest.Name("checkpoint", checkpoint), func(t *testing.T) {
			p, err := model.LoadPredictor(d, cfg, model.InitPredictor(cfg, 7), model.FP32)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Free()
			if err := p.AddLoRA(lc); err != nil {
				t.Fatal(err)
			}
			before := d.Memory().Used
			g, err := train.NewLossGraph(p, 2, 4, 2, checkpoint)
			if err != nil {
				t.Fatal(err)
			}
			used := d.Memory().Used - before
			g.Free()
			pp, plan, err := model.NewPlanPredictor(cfg, lc)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := train.NewLossGraph(pp, 2, 4, 2, checkpoint); err != nil {
				t.Fatal(err)
			}
			if int64(used) != plan.Bytes {
				t.Errorf("loss graph took %d bytes from the allocator, the plan counts %d", used, plan.Bytes)
			}
		})
	}
}

// TestPlanMemoryBelowTorch pins the predictor step's device memory at the real geometry (ViT-g AC
// predictor, configs/rtx-24gb.yaml: fp16 weights, LoRA r16 with dropout on four targets, 8-bit AdamW,
// checkpointing) below the allocator peak PyTorch + PEFT reached for the same step on an H100 (bf16
// autocast, f32 weights, checkpointing): 2.55 GiB at 16 frames × 2 clips, 3.58 GiB at 8 × 8. The plan
// runs the allocation code itself without a device, and TestLossGraphPlanMatchesAllocator ties it to
// the allocator. Before activations were placed by lifetime this step took 2.96 and 5.33 GiB.
func TestPlanMemoryBelowTorch(t *testing.T) {
	for _, c := range []struct {
		frames, batch int
		torchGiB      float64
	}{{16, 2, 2.55}, {8, 8, 3.58}} {
		t.Run(vktest.Name("T", c.frames, "B", c.batch), func(t *testing.T) {
			cfg, err := train.Load("../configs/rtx-24gb.yaml", []string{"model.checkpoint=", fmt.Sprintf("data.frames=%d", c.frames),
				fmt.Sprintf("data.batch_size=%d", c.batch)})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.LoRA.Dropout == 0 || !cfg.Model.GradCheckpointing {
				t.Fatalf("configs/rtx-24gb.yaml changed: lora.dropout %v, grad_checkpointing %v", cfg.LoRA.Dropout, cfg.Model.GradCheckpointing)
			}
			mp, err := train.PlanMemory(cfg)
			if err != nil {
				t.Fatal(err)
			}
			step := mp.PredictorWeights + mp.LoRA + mp.Optimizer + mp.Activations
			gib := float64(step) / (1 << 30)
			t.Logf("predictor step %.3f GiB (activations %.3f GiB), PyTorch %.2f GiB", gib, float64(mp.Activations)/(1<<30), c.torchGiB)
			if gib > 0.95*c.torchGiB {
				t.Errorf("predictor step plans %.3f GiB, want at most 95%% of PyTorch's %.2f GiB", gib, c.torchGiB)
			}
		})
	}
}
