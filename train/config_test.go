package train

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestLoadShippedConfigs loads and validates every file in configs/ and spot-checks the values each one
// exists for.
func TestLoadShippedConfigs(t *testing.T) {
	tests := []struct {
		file  string
		check func(c *Config) string
	}{
		{"demo.yaml", func(c *Config) string {
			if c.Model.Img/c.Model.Patch != 4 || c.Model.Depth != 2 || c.Data.Frames != 4 || c.Data.Source != "testdata/droid_sample" {
				return "not the tiny 4x4-patch, depth-2, T=4 demo on testdata/droid_sample"
			}
			return ""
		}},
		{"droid-vitg.yaml", func(c *Config) string {
			want := LRSchedule{Kind: "wsd", Steps: 94500, Warmup: 4500, Decay: 4500, StartLR: 7.5e-5, PeakLR: 4.25e-4, FinalLR: 0}
			if got := NewLRSchedule(c.Training); got != want {
				return fmt.Sprintf("schedule %+v is not the official WSD %+v", got, want)
			}
			if c.Data.Source != "gs://gresearch/robotics/droid/1.0.1" || c.Model.PredDim != 1024 || c.Model.Encoder.Heads != 22 ||
				c.Data.BatchSize*c.Training.GradAccum != 256 || c.Training.Seed != 239 || c.Training.ClipGradNorm != 0 {
				return "not the official sizes/recipe"
			}
			return ""
		}},
		{"rtx-24gb.yaml", func(c *Config) string {
			if c.Data.Frames != 16 || c.Data.BatchSize != 2 || !c.Model.GradCheckpointing || c.Training.Optimizer != "adamw8bit" || c.Model.Precision != "fp16" {
				return "not T=16, B=2, checkpointing, adamw8bit, fp16"
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run("file="+tt.file, func(t *testing.T) {
			c, err := Load(filepath.Join("..", "configs", tt.file), nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if msg := tt.check(c); msg != "" {
				t.Errorf("%s: %s", tt.file, msg)
			}
		})
	}
}

func fmtAny(v any) string {
	var b bytes.Buffer
	yaml.NewEncoder(&b).Encode(v)
	return b.String()
}

// TestDemoShowsEveryKey checks the STYLE rule that configs/demo.yaml lists every key of Config.
func TestDemoShowsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../configs/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := prefix + n.Content[i].Value
			present[key] = true
			walk(n.Content[i+1], key+".")
		}
	}
	walk(doc.Content[0], "")
	for _, key := range allKeys(reflect.TypeOf(Config{}), "") {
		if !present[key] {
			t.Errorf("configs/demo.yaml lacks key %s", key)
		}
	}
}

func allKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for _, name := range tagNames(t) {
		f, _ := fieldByTag(t, name)
		keys = append(keys, prefix+name)
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, allKeys(f.Type, prefix+name+".")...)
		}
	}
	return keys
}

// TestDefaults checks that omitted keys take the documented defaults and that Resolve fills the derived
// ones.
func TestDefaults(t *testing.T) {
	c, err := Parse("t.yaml", []byte("data:\n  source: somewhere\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.source = "t.yaml"
	want.Data.Source = "somewhere"
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Parse of a minimal file:\n%s\nwant defaults:\n%s", fmtAny(c), fmtAny(want))
	}
	c.Resolve()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Checkpoint.Dir != "runs/default/checkpoints" {
		t.Errorf("checkpoint.dir = %q, want runs/default/checkpoints", c.Checkpoint.Dir)
	}
	if c.Training.FinalWeightDecay == nil || *c.Training.FinalWeightDecay != 0.04 {
		t.Errorf("final_weight_decay = %v, want 0.04 (= weight_decay)", c.Training.FinalWeightDecay)
	}

	empty, err := Parse("empty.yaml", nil)
	if err != nil || empty.Data.Source != "" || empty.Model.PredDim != 1024 {
		t.Errorf("Parse(empty) = %+v, %v; want defaults", empty.Model, err)
	}
}

// TestConfigErrors feeds one bad value per case and checks the whole message.
func TestConfigErrors(t *testing.T) {
	const src = "data:\n  source: x\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"lr=negative", src + "training:\n  lr: -0.0001\n",
			"config t.yaml: training.lr: must be > 0, got -0.0001"},
		{"key=unknown", src + "training:\n  steps: 9000\n  lrr: 1\n",
			"config t.yaml:5: training.lrr: unknown key (known keys here: steps, grad_accum, optimizer, lr, betas, eps, weight_decay, final_weight_decay, schedule, clip_grad_norm, auto_steps, loss_exp, loss_scale, seed, val_every)"},
		{"key=unknown_top", src + "trainig:\n  lr: 1\n",
			"config t.yaml:3: trainig: unknown key (known keys here: model, lora, data, training, logging, checkpoint)"},
		{"key=unknown_nested", src + "training:\n  schedule:\n    kind: wsd\n    warmpu: 3\n",
			"config t.yaml:6: training.schedule.warmpu: unknown key (known keys here: kind, warmup, decay, start_lr, final_lr)"},
		{"type=int", src + "training:\n  steps: many\n",
			"config t.yaml:4: training.steps: cannot unmarshal !!str `many` into int"},
		{"type=section", src + "lora: 5\n",
			`config t.yaml:3: lora: must be a mapping of keys, got the value "5"`},
		{"syntax", src + "training: [\n",
			"config t.yaml:3:11: '[' is not closed: did not find expected node content"},
		// yaml.v3 prints parser errors at their 0-based line ("line 1" for this '[' on line 2).
		{"bracket=line2", "lora:\n  targets: [qkv, proj\ndata:\n  source: x\n",
			"config t.yaml:2:12: '[' is not closed: did not find expected ',' or ']'"},
		{"brace=line1", "lora: {r: 4\ndata:\n  source: x\n",
			"config t.yaml:1:7: '{' is not closed: did not find expected ',' or '}'"},
		{"bracket=multiline", "lora:\n  targets: [qkv, [proj],\n    fc1\ndata:\n  source: x\n",
			"config t.yaml:2:12: '[' is not closed: did not find expected ',' or ']'"},
		{"bracket=quoted", "lora:\n  targets: [qkv, \"pr]o[j\", 'a]'  # ]]\ndata:\n  source: x\n",
			"config t.yaml:2:12: '[' is not closed: did not find expected ',' or ']'"},
		{"bracket=after_a_closed_one", "lora:\n  targets: [qkv,\n    proj]\ntraining:\n  betas: [0.9, 0.99\n",
			"config t.yaml:5:10: '[' is not closed: did not find expected ',' or ']'"},
		{"indent", src + " lora: 4\n", "config t.yaml:3: did not find expected key"},
		{"dash", src + "- lora\n", "config t.yaml:3: did not find expected key"},
		{"tab", "data:\n\tsource: x\n", "config t.yaml:2: found character that cannot start any token"},
		{"mapping_in_value", src + "lora:\n  r: 4\n  alpha: :\n", "config t.yaml:5: mapping values are not allowed in this context"},
		{"documents=2", src + "---\ndata:\n  source: y\n",
			"config t.yaml:3: more than one YAML document; want exactly one"},
		{"schedule=too_long", src + "training:\n  steps: 100\n",
			"config t.yaml: training.schedule: warmup (4500) + decay (4500) must be <= training.steps (100)"},
		{"cosine=warmup_too_long", src + "training:\n  steps: 100\n  schedule: {kind: cosine, warmup: 101}\n",
			"config t.yaml: training.schedule.warmup: must be <= training.steps (100), got 101"},
		{"precision=fp8", src + "model:\n  precision: fp8\n",
			`config t.yaml: model.precision: must be one of fp32|fp16|bf16, got "fp8"`},
		{"encoder_dim=mismatch", src + "model:\n  encoder: {dim: 1100}\n",
			"config t.yaml: model.encoder.dim: must equal model.embed_dim (1408): the predictor reads encoder tokens, got 1100"},
		{"heads=not_dividing", src + "model:\n  heads: 7\n",
			"config t.yaml: model.heads: must divide model.pred_dim (1024), got 7"},
		{"heads=head_dim_small", src + "model:\n  pred_dim: 64\n  heads: 16\n",
			"config t.yaml: model.heads: gives head dim model.pred_dim/heads = 4; 3-D RoPE needs >= 6 (spec §4.1)"},
		{"patch=not_dividing", src + "model:\n  img: 100\n",
			"config t.yaml: model.patch: must divide model.img (100), got 16"},
		{"lora_target=bad", src + "lora:\n  targets: [qkv, q_proj]\n",
			`config t.yaml: lora.targets: must be a subset of qkv, proj, fc1, fc2, got "q_proj"`},
		{"lora_target=twice", src + "lora:\n  targets: [qkv, qkv]\n",
			`config t.yaml: lora.targets: lists "qkv" twice`},
		{"lora_r=too_big", src + "lora:\n  r: 2048\n",
			"config t.yaml: lora.r: must be in [1, model.pred_dim=1024], got 2048"},
		{"dropout=1", src + "lora:\n  dropout: 1\n",
			"config t.yaml: lora.dropout: must be in [0, 1), got 1"},
		{"lora_path=unknown", src + "lora:\n  path: merged\n",
			`config t.yaml: lora.path: must be one of fused|thin, got "merged"`},
		{"source=missing", "training:\n  seed: 1\n",
			"config t.yaml: data.source: must be set to a local dataset folder or gs://bucket/prefix"},
		{"source=bad_gs", "data:\n  source: gs://\n",
			`config t.yaml: data.source: want gs://bucket[/prefix], got "gs://" (empty bucket)`},
		{"camera=bad", "data:\n  source: x\n  camera: left\n",
			`config t.yaml: data.camera: must be one of exterior_image_1_left|exterior_image_2_left|wrist_image_left|exterior_random, got "left"`},
		{"frames=1", "data:\n  source: x\n  frames: 1\n",
			"config t.yaml: data.frames: must be >= 2, got 1"},
		{"betas=three", src + "training:\n  betas: [0.9, 0.99, 0.999]\n",
			"config t.yaml: training.betas: must be 2 values [beta1, beta2], got 3"},
		{"beta2=1", src + "training:\n  betas: [0.9, 1]\n",
			"config t.yaml: training.betas[1]: must be in [0, 1), got 1"},
		{"fp16=no_scaler", src + "model:\n  precision: fp16\ntraining:\n  loss_scale: {enabled: false}\n",
			"config t.yaml: training.loss_scale.enabled: must be true when model.precision is fp16 (fp16 gradients underflow without scaling)"},
		{"val_every=no_episodes", src + "training:\n  val_every: 100\n",
			"config t.yaml: training.val_every: is 100 but data.val_episodes is 0; hold out at least 1 episode or set val_every to 0"},
		{"progress=bad", src + "logging:\n  progress: fancy\n",
			`config t.yaml: logging.progress: must be one of auto|bar|plain|off, got "fancy"`},
		{"gcs=bad_url", src + "checkpoint:\n  gcs_sync: {url: s3://b/p}\n",
			`config t.yaml: checkpoint.gcs_sync.url: want gs://bucket[/prefix], got "s3://b/p"`},
		{"gcs=every_zero", src + "checkpoint:\n  gcs_sync: {url: gs://b/p, every_minutes: 0}\n",
			"config t.yaml: checkpoint.gcs_sync.every_minutes: must be > 0, got 0"},
		{"keep_last=negative", src + "checkpoint:\n  keep_last: -1\n",
			"config t.yaml: checkpoint.keep_last: must be >= 0, got -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(tt.yaml))
			if err == nil {
				c.Resolve()
				err = c.Validate()
			}
			if err == nil {
				t.Fatalf("config:\n%s\nno error, want %q", tt.yaml, tt.want)
			}
			if err.Error() != tt.want {
				t.Fatalf("config:\n%s\n got error %q\nwant error %q", tt.yaml, err.Error(), tt.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a *ConfigError", err)
			}
		})
	}
}

// TestConfigErrorAutoSteps is separate because frames=3 with the default auto_steps=2 is valid, so it
// needs a second key to fail.
func TestConfigErrorAutoSteps(t *testing.T) {
	c, err := Parse("t.yaml", []byte("data: {source: x, frames: 3}\ntraining: {auto_steps: 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "config t.yaml: training.auto_steps: must be in [1, data.frames-1 = 2], got 3"
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Fatalf("Validate = %v, want %q", err, want)
	}
}

// TestConfigErrorsAll checks that Validate reports every problem, not just the first.
func TestConfigErrorsAll(t *testing.T) {
	c, err := Parse("t.yaml", []byte("data: {source: x}\ntraining: {lr: 0, eps: -1}\nlogging: {every: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	for _, want := range []string{"training.lr: must be > 0, got 0", "training.eps: must be > 0, got -1", "logging.every: must be >= 1, got 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v; want it to contain %q", err, want)
		}
	}
}

func TestApplySet(t *testing.T) {
	tests := []struct {
		set   string
		check func(c *Config) bool
	}{
		{"training.lr=1e-4", func(c *Config) bool { return c.Training.LR == 1e-4 }},
		{"training.steps=300", func(c *Config) bool { return c.Training.Steps == 300 }},
		{"training.betas=[0.9, 0.95]", func(c *Config) bool { return reflect.DeepEqual(c.Training.Betas, []float64{0.9, 0.95}) }},
		{"training.schedule.kind=cosine", func(c *Config) bool { return c.Training.Schedule.Kind == "cosine" }},
		{"training.final_weight_decay=0.1", func(c *Config) bool { return *c.Training.FinalWeightDecay == 0.1 }},
		{"lora.targets=qkv, proj", func(c *Config) bool { return reflect.DeepEqual(c.LoRA.Targets, []string{"qkv", "proj"}) }},
		{"lora.targets=[fc1]", func(c *Config) bool { return reflect.DeepEqual(c.LoRA.Targets, []string{"fc1"}) }},
		{"model.grad_checkpointing=true", func(c *Config) bool { return c.Model.GradCheckpointing }},
		{"data.source=gs://bucket/p", func(c *Config) bool { return c.Data.Source == "gs://bucket/p" }},
		{"checkpoint.resume=", func(c *Config) bool { return c.Checkpoint.Resume == "" }},
		{"checkpoint.resume=auto", func(c *Config) bool { return c.Checkpoint.Resume == "auto" }},
		{"data.camera=yes", func(c *Config) bool { return c.Data.Camera == "yes" }}, // strings are verbatim, not YAML booleans
	}
	for _, tt := range tests {
		t.Run("set="+tt.set, func(t *testing.T) {
			c := Default()
			c.Checkpoint.Resume = "something"
			if err := ApplySet(c, tt.set); err != nil {
				t.Fatalf("ApplySet(%q): %v", tt.set, err)
			}
			if !tt.check(c) {
				t.Errorf("ApplySet(%q) left the config as:\n%s", tt.set, fmtAny(c))
			}
		})
	}

	errTests := []struct{ set, want string }{
		{"training.lrr=1", "config <defaults>: --set training.lrr=1: unknown key training.lrr (known keys in training: steps, grad_accum, optimizer, lr, betas, eps, weight_decay, final_weight_decay, schedule, clip_grad_norm, auto_steps, loss_exp, loss_scale, seed, val_every)"},
		{"trainig.lr=1", "config <defaults>: --set trainig.lr=1: unknown key trainig (known keys in the top level: model, lora, data, training, logging, checkpoint)"},
		{"training=1", "config <defaults>: --set training=1: training is a section; set one of its keys (steps, grad_accum, optimizer, lr, betas, eps, weight_decay, final_weight_decay, schedule, clip_grad_norm, auto_steps, loss_exp, loss_scale, seed, val_every)"},
		{"training.lr.x=1", "config <defaults>: --set training.lr.x=1: training.lr is a value, not a section"},
		{"training.lr=abc", "config <defaults>: --set training.lr=abc: cannot unmarshal !!str `abc` into float64"},
		{"training.steps=", "config <defaults>: --set training.steps=: empty value for training.steps (want a int)"},
		{"training.lr", "config <defaults>: --set training.lr: want section.key=value"},
	}
	for _, tt := range errTests {
		t.Run("set="+tt.set, func(t *testing.T) {
			err := ApplySet(Default(), tt.set)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("ApplySet(%q) = %v\nwant %q", tt.set, err, tt.want)
			}
		})
	}
}

// TestLoadSetThenResolve checks the order Load applies things in: --set before derived defaults, and
// validation after both.
func TestLoadSetThenResolve(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("data: {source: x}\nlogging: {dir: runs/a}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, []string{"training.weight_decay=0.1", "logging.dir=runs/b"})
	if err != nil {
		t.Fatal(err)
	}
	if *c.Training.FinalWeightDecay != 0.1 || c.Checkpoint.Dir != "runs/b/checkpoints" {
		t.Errorf("final_weight_decay = %v, checkpoint.dir = %q; want 0.1 and runs/b/checkpoints (derived after --set)",
			*c.Training.FinalWeightDecay, c.Checkpoint.Dir)
	}
	_, err = Load(path, []string{"training.lr=-1"})
	if want := "config " + path + ": training.lr: must be > 0, got -1"; err == nil || err.Error() != want {
		t.Errorf("Load with bad --set = %v, want %q", err, want)
	}
	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "missing.yaml: open") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want an open error naming the file", err)
	}
}

// TestPrintRoundTrip checks that Print's output loads back to the same config.
func TestPrintRoundTrip(t *testing.T) {
	for _, file := range []string{"demo.yaml", "droid-vitg.yaml", "rtx-24gb.yaml"} {
		t.Run("file="+file, func(t *testing.T) {
			c, err := Load(filepath.Join("..", "configs", file), nil)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := Print(&b, c); err != nil {
				t.Fatal(err)
			}
			back, err := Parse("printed", b.Bytes())
			if err != nil {
				t.Fatalf("Parse(Print(c)): %v\n%s", err, b.String())
			}
			back.Resolve()
			back.source = c.source
			if !reflect.DeepEqual(back, c) {
				t.Errorf("round trip changed the config:\n%s\nwant:\n%s", fmtAny(back), fmtAny(c))
			}
		})
	}
}
