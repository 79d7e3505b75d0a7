package train

// The run configuration: one YAML file whose keys match the yaml tags below one to one
// (configs/demo.yaml shows every key). Load reads it in four steps, each with its own error shape:
//
//  1. walk the YAML node tree against the structs, so an unknown key is reported with its full dotted
//     name and line ("config configs/demo.yaml:12: training.lrr: unknown key ...");
//  2. decode with yaml.v3's Decoder.KnownFields(true) over a Config pre-filled by Default, so omitted keys
//     keep their documented defaults;
//  3. apply --set overrides (ApplySet);
//  4. resolve the derived defaults (checkpoint.dir, training.final_weight_decay) and Validate every value
//     ("config configs/demo.yaml: training.lr: must be > 0, got -0.0001").
//
// Defaults follow the official V-JEPA 2-AC recipe (spec §2.1, §6, §8.1, §10) wherever the spec has a
// number; the rest are noted next to their field.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
	"github.com/vjepa-vk/vjepa-vk/model"
)

// Config is one training run, as read from YAML.
type Config struct {
	Model      ModelConfig      `yaml:"model"`
	LoRA       LoRAConfig       `yaml:"lora"`
	Data       DataConfig       `yaml:"data"`
	Training   TrainingConfig   `yaml:"training"`
	Logging    LoggingConfig    `yaml:"logging"`
	Checkpoint CheckpointConfig `yaml:"checkpoint"`

	// source names the file (and --set overrides) this config came from; it prefixes every error.
	source string
}

// ModelConfig sizes the AC predictor (spec §2.1) and the frozen encoder (spec §8.1).
type ModelConfig struct {
	EmbedDim int     `yaml:"embed_dim"` // encoder width, predictor in/out width; default 1408
	PredDim  int     `yaml:"pred_dim"`  // predictor width D; default 1024
	Depth    int     `yaml:"depth"`     // predictor blocks; default 24
	Heads    int     `yaml:"heads"`     // predictor heads; default 16 (head dim 64)
	MLPRatio float64 `yaml:"mlp_ratio"` // predictor MLP hidden = mlp_ratio·pred_dim; default 4
	Img      int     `yaml:"img"`       // square input side in pixels; default 256
	Patch    int     `yaml:"patch"`     // patch side; default 16 (16×16 grid at 256 px)
	Tubelet  int     `yaml:"tubelet"`   // encoder tubelet depth; default 2 (each frame is duplicated, spec §8.4)

	Encoder EncoderConfig `yaml:"encoder"`

	// Checkpoint is the official AC checkpoint (encoder + predictor, spec §9); "" means random init
	// (only sensible for tests and the demo). Default "".
	Checkpoint string `yaml:"checkpoint"`
	// Precision of activations and matmuls: fp32, fp16 or bf16; default bf16 (the official autocast dtype,
	// spec §6.4). LoRA weights and optimizer state stay fp32.
	Precision string `yaml:"precision"`
	// Extrinsics feeds the 6-D camera extrinsics token (spec §2.1: off in the official model). Default false.
	Extrinsics bool `yaml:"extrinsics"`
	// GradCheckpointing recomputes block activations in backward to save memory (on in the official
	// recipe, spec §10). Default false.
	GradCheckpointing bool `yaml:"grad_checkpointing"`
	// ActionDim and StateDim are the widths of the data's actions and states; default 7 (DROID, spec
	// §7.4-7.5). Other widths give new action_encoder/state_encoder layers trained in full next to the
	// adapters (exported as PEFT modules_to_save).
	ActionDim int `yaml:"action_dim"`
	StateDim  int `yaml:"state_dim"`
}

// EncoderConfig sizes the frozen ViT encoder (spec §8.1). Its width must equal model.embed_dim.
type EncoderConfig struct {
	Dim       int `yaml:"dim"`        // default 1408
	Depth     int `yaml:"depth"`      // default 40
	Heads     int `yaml:"heads"`      // default 22 (vit_giant_xformers, head dim 64)
	MLPHidden int `yaml:"mlp_hidden"` // default 6144 = int(1408·48/11)
}

// LoRAConfig selects the low-rank adapters trained on the predictor's linear layers.
type LoRAConfig struct {
	R       int      `yaml:"r"`       // rank; default 16
	Alpha   float64  `yaml:"alpha"`   // scale numerator: scale = alpha/r (alpha/√r with rslora); default 32
	Dropout float64  `yaml:"dropout"` // dropout on the LoRA input branch, in [0, 1); default 0
	Targets []string `yaml:"targets"` // subset of qkv, proj, fc1, fc2; default all four
	RSLoRA  bool     `yaml:"rslora"`  // rank-stabilised scaling alpha/√r; default false
	Seed    int64    `yaml:"seed"`    // init seed for the A matrices; default 0
	// Path: fused (the adapter products in the base GEMMs' epilogues) or thin (GEMMs of their own); the
	// same results to rounding, fused measured faster (model.LoRAPath); default fused.
	Path string `yaml:"path"`
}

// Model returns the adapters' model configuration; dropout applies in training steps only.
func (l LoRAConfig) Model() model.LoRAConfig {
	return model.LoRAConfig{R: l.R, Alpha: l.Alpha, Dropout: l.Dropout, Targets: l.Targets, RSLoRA: l.RSLoRA,
		Seed: uint64(l.Seed), Path: model.LoRAPath(l.Path)}
}

// DataConfig selects episodes and how clips are cut from them (spec §7, droid-rlds.md §3).
type DataConfig struct {
	// Format is rlds (DROID's TFRecords; default) or lerobot (a LeRobot v2.1 or v3.0 dataset).
	Format string `yaml:"format"`
	// Source is a local dataset folder or gs://bucket/prefix (for RLDS, of a TFDS version folder).
	// Required. Relative paths are relative to the working directory.
	Source string `yaml:"source"`
	// Camera is the RLDS image key: exterior_image_1_left (default), exterior_image_2_left,
	// wrist_image_left, or exterior_random (one of the two exterior views per clip, as openpi does); for
	// lerobot, a video or image feature (observation.images.<name>).
	Camera string `yaml:"camera"`
	// LeRobot maps a LeRobot dataset's columns to the model's inputs (format lerobot only).
	LeRobot lerobot.Mapping `yaml:"lerobot"`
	// Frames per clip T; default 8 (spec §6).
	Frames int `yaml:"frames"`
	// FPS is the nominal sampling rate; the stride is ceil(source/fps) steps of the episode, recorded at
	// 15 Hz on DROID and at meta/info.json's fps on LeRobot. Default 4.
	FPS float64 `yaml:"fps"`
	// BatchSize is clips per micro-batch; default 8 (per GPU in the official recipe, spec §7.8).
	BatchSize int `yaml:"batch_size"`
	// Workers decode JPEGs and build clips in parallel; default 4.
	Workers int `yaml:"workers"`
	// ShuffleBuffer is the number of clips mixed before batching; 0 keeps file order. Default 256.
	ShuffleBuffer int `yaml:"shuffle_buffer"`
	// SuccessOnly drops episodes whose file_path lacks "/success/" (droid-rlds.md §1). Default false.
	SuccessOnly bool `yaml:"success_only"`
	// IdleFilter skips clips whose sampled states barely move (droid-rlds.md §4). Default false.
	IdleFilter bool `yaml:"idle_filter"`
	// ValEpisodes is the number of episodes held out for validation; default 0 (no validation).
	ValEpisodes int `yaml:"val_episodes"`
	// FeatureCache is a folder caching frozen-encoder outputs per clip; "" (default) disables it.
	FeatureCache string `yaml:"feature_cache"`
	// Seed drives episode order, clip windows and camera choice; default 0.
	Seed int64 `yaml:"seed"`
}

// TrainingConfig is the optimisation recipe (spec §6, §10).
type TrainingConfig struct {
	// Steps is the number of optimizer steps; default 94500 (315 epochs × 300 iterations, spec §10).
	Steps int `yaml:"steps"`
	// GradAccum micro-batches of data.batch_size clips are accumulated per optimizer step; default 1.
	GradAccum int `yaml:"grad_accum"`
	// Optimizer is adamw or adamw8bit (block-quantised uint8 moments); default adamw.
	Optimizer string `yaml:"optimizer"`
	// LR is the peak learning rate; default 4.25e-4 (spec §10).
	LR float64 `yaml:"lr"`
	// Betas are AdamW's (β1, β2); default [0.9, 0.999].
	Betas []float64 `yaml:"betas"`
	// Eps is AdamW's ε; default 1e-8.
	Eps float64 `yaml:"eps"`
	// WeightDecay applies to matrices only (spec §10 param groups); default 0.04.
	WeightDecay float64 `yaml:"weight_decay"`
	// FinalWeightDecay ends a cosine weight-decay schedule from weight_decay; omitted (null) means equal to
	// weight_decay, i.e. constant, as in the official recipe (spec §10).
	FinalWeightDecay *float64 `yaml:"final_weight_decay"`

	Schedule ScheduleConfig `yaml:"schedule"`

	// ClipGradNorm clips the global gradient norm; 0 (default, official) disables clipping.
	ClipGradNorm float64 `yaml:"clip_grad_norm"`
	// AutoSteps is the rollout length k of the auto-regressive loss (spec §6.3); default 2.
	AutoSteps int `yaml:"auto_steps"`
	// LossExp is p in mean |ẑ − z|^p / p (spec §6.2); default 1 (L1).
	LossExp float64 `yaml:"loss_exp"`

	LossScale LossScaleConfig `yaml:"loss_scale"`

	// Seed drives LoRA dropout masks and anything else random in the step; default 239 (spec §10).
	Seed int64 `yaml:"seed"`
	// ValEvery runs validation every this many steps; 0 (default) never.
	ValEvery int `yaml:"val_every"`
}

// ScheduleConfig shapes the learning rate over training (spec §10).
type ScheduleConfig struct {
	// Kind is wsd (warmup, stable, linear decay; official), cosine (warmup then cosine to final_lr) or
	// constant (warmup then lr); default wsd.
	Kind string `yaml:"kind"`
	// Warmup steps of linear ramp from start_lr to lr; default 4500.
	Warmup int `yaml:"warmup"`
	// Decay is the length of wsd's final linear ramp to final_lr; default 4500. Unused by cosine/constant.
	Decay int `yaml:"decay"`
	// StartLR is the rate at step 0 of the warmup; default 7.5e-5.
	StartLR float64 `yaml:"start_lr"`
	// FinalLR is the rate at the last step (wsd, cosine); default 0.
	FinalLR float64 `yaml:"final_lr"`
}

// LossScaleConfig configures dynamic loss scaling (GradScaler semantics: halve on overflow and skip the
// step, double after growth_interval clean steps).
type LossScaleConfig struct {
	Enabled        bool    `yaml:"enabled"`         // default true (official uses a GradScaler even for bf16)
	Init           float64 `yaml:"init"`            // default 65536
	GrowthInterval int     `yaml:"growth_interval"` // default 2000
}

// LoggingConfig says where and how often metrics go.
type LoggingConfig struct {
	// Dir is the run folder: metrics.jsonl, TensorBoard event files, plots. Default "runs/default".
	Dir string `yaml:"dir"`
	// Every is the step interval of plain progress lines; default 10. JSONL and TensorBoard log every step.
	Every int `yaml:"every"`
	// TensorBoard writes events.out.tfevents.* files; default true.
	TensorBoard bool `yaml:"tensorboard"`
	// JSONL writes metrics.jsonl; default true.
	JSONL bool `yaml:"jsonl"`
	// Progress is auto (bar on a terminal, plain lines otherwise; default), bar, plain or off.
	Progress string `yaml:"progress"`
}

// CheckpointConfig controls checkpoint files, resume and mirroring.
type CheckpointConfig struct {
	// Dir holds the checkpoints and their manifest; "" (default) means <logging.dir>/checkpoints.
	Dir string `yaml:"dir"`
	// Every saves a checkpoint every this many steps; 0 saves only at the end. Default 1000.
	Every int `yaml:"every"`
	// KeepLast keeps this many most recent checkpoints; 0 keeps all. Default 3.
	KeepLast int `yaml:"keep_last"`
	// KeepBest also keeps the checkpoint with the lowest validation loss; default true.
	KeepBest bool `yaml:"keep_best"`
	// Resume is "" (start fresh; default), "auto" (the newest valid checkpoint in dir, restored from
	// gcs_sync.url when dir has none), gs://bucket/prefix (restore that mirror, then auto), a checkpoint
	// folder or a checkpoint file (resume.go).
	Resume string `yaml:"resume"`

	GCSSync GCSSyncConfig `yaml:"gcs_sync"`
	Export  ExportConfig  `yaml:"export"`
}

// GCSSyncConfig mirrors the run folder to GCS in the background (gcssync.go).
type GCSSyncConfig struct {
	URL          string  `yaml:"url"`           // gs://bucket/prefix; "" (default) disables syncing
	EveryMinutes float64 `yaml:"every_minutes"` // default 10
	// FinalMinutes bounds the last pass after training ends or is interrupted (a second interrupt
	// abandons it sooner); the run fails when that pass does. Default 5.
	FinalMinutes float64 `yaml:"final_minutes"`
}

// ExportConfig chooses what is written at the end of training besides the trainer checkpoint.
type ExportConfig struct {
	PEFT   bool `yaml:"peft"`   // adapter_model.safetensors + adapter_config.json; default true
	Merged bool `yaml:"merged"` // predictor weights with LoRA merged in; default false
}

// Allowed enumerations; Validate and the docs above use the same lists.
var (
	precisions    = []string{"fp32", "fp16", "bf16"}
	loraPaths     = []string{string(model.LoRAFused), string(model.LoRAThin)}
	loraTargets   = []string{"qkv", "proj", "fc1", "fc2"}
	cameras       = []string{"exterior_image_1_left", "exterior_image_2_left", "wrist_image_left", "exterior_random"}
	formats       = []string{FormatRLDS, FormatLeRobot}
	optimizers    = []string{"adamw", "adamw8bit"}
	scheduleKinds = []string{"wsd", "cosine", "constant"}
	progressModes = []string{"auto", "bar", "plain", "off"}
)

// Default returns a Config holding every documented default. data.source has no default and must be set.
func Default() *Config {
	return &Config{
		Model: ModelConfig{
			EmbedDim: 1408, PredDim: 1024, Depth: 24, Heads: 16, MLPRatio: 4,
			Img: 256, Patch: 16, Tubelet: 2, ActionDim: 7, StateDim: 7,
			Encoder:   EncoderConfig{Dim: 1408, Depth: 40, Heads: 22, MLPHidden: 6144},
			Precision: "bf16",
		},
		LoRA: LoRAConfig{R: 16, Alpha: 32, Targets: slices.Clone(loraTargets), Path: string(model.LoRAFused)},
		Data: DataConfig{
			Format: FormatRLDS, LeRobot: lerobot.DefaultMapping(),
			Camera: "exterior_image_1_left", Frames: 8, FPS: 4, BatchSize: 8, Workers: 4, ShuffleBuffer: 256,
		},
		Training: TrainingConfig{
			Steps: 94500, GradAccum: 1, Optimizer: "adamw", LR: 4.25e-4, Betas: []float64{0.9, 0.999},
			Eps: 1e-8, WeightDecay: 0.04,
			Schedule:  ScheduleConfig{Kind: "wsd", Warmup: 4500, Decay: 4500, StartLR: 7.5e-5, FinalLR: 0},
			AutoSteps: 2, LossExp: 1,
			LossScale: LossScaleConfig{Enabled: true, Init: 65536, GrowthInterval: 2000},
			Seed:      239,
		},
		Logging: LoggingConfig{Dir: "runs/default", Every: 10, TensorBoard: true, JSONL: true, Progress: "auto"},
		Checkpoint: CheckpointConfig{
			Every: 1000, KeepLast: 3, KeepBest: true,
			GCSSync: GCSSyncConfig{EveryMinutes: 10, FinalMinutes: 5},
			Export:  ExportConfig{PEFT: true},
		},
		source: "<defaults>",
	}
}

// ConfigError is any problem with a config file or override: a YAML syntax error, an unknown key, a value
// of the wrong type or out of range.
type ConfigError struct {
	File   string // config file, or "<defaults>"
	Line   int    // 1-based; 0 when not tied to a line
	Column int    // 1-based; 0 when unknown
	Field  string // dotted key ("training.lr"), or "--set KEY=VALUE"; may be empty
	Msg    string
	Err    error // underlying cause (e.g. fs.ErrNotExist), if any
}

// Unwrap returns the underlying cause, so errors.Is(err, fs.ErrNotExist) works on a missing file.
func (e *ConfigError) Unwrap() error { return e.Err }

func (e *ConfigError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
		if e.Column > 0 {
			loc += ":" + strconv.Itoa(e.Column)
		}
	}
	if e.Field == "" {
		return "config " + loc + ": " + e.Msg
	}
	return "config " + loc + ": " + e.Field + ": " + e.Msg
}

// Load reads the YAML file at path, applies each "section.key=value" override in sets, fills the derived
// defaults and validates the result.
func Load(path string, sets []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: err.Error(), Err: err}
	}
	cfg, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	for _, kv := range sets {
		if err := ApplySet(cfg, kv); err != nil {
			return nil, err
		}
	}
	cfg.Resolve()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse decodes YAML data over Default(); name is used in errors. It neither resolves nor validates, so
// overrides can still be applied.
func Parse(name string, data []byte) (*Config, error) {
	cfg := Default()
	cfg.source = name

	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(name, data, err)
	}
	if len(doc.Content) == 0 {
		return cfg, nil // empty file: all defaults
	}
	lines := map[int]string{}
	if err := checkKeys(name, doc.Content[0], reflect.TypeOf(*cfg), "", lines); err != nil {
		return nil, err
	}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return nil, decodeError(name, err, lines)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &ConfigError{File: name, Line: extra.Line, Msg: "more than one YAML document; want exactly one"}
	}
	return cfg, nil
}

// checkKeys walks a mapping node against struct type t, rejecting keys with no matching yaml tag and
// recording the dotted key of every value's line (for decodeError).
func checkKeys(file string, n *yaml.Node, t reflect.Type, prefix string, lines map[int]string) error {
	section := strings.TrimSuffix(prefix, ".")
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil // "lora:" with nothing below keeps the defaults
		}
		return &ConfigError{File: file, Line: n.Line, Field: section, Msg: "must be a mapping of keys, got " + nodeKind(n)}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := fieldByTag(t, k.Value)
		key := prefix + k.Value
		if !ok {
			return &ConfigError{File: file, Line: k.Line, Field: key,
				Msg: fmt.Sprintf("unknown key (known keys here: %s)", strings.Join(tagNames(t), ", "))}
		}
		lines[v.Line] = key
		if f.Type.Kind() == reflect.Struct {
			if err := checkKeys(file, v, f.Type, key+".", lines); err != nil {
				return err
			}
		}
	}
	return nil
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

var lineErr = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlParserProblems are the problems yaml.v3's parser (as opposed to its scanner) reports. yaml.v3
// v3.0.1 prints the 0-based line of their mark as it is, while it adds 1 for scanner errors
// (decode.go, parser.fail): an unclosed '[' on line 2 reads "line 1", and one on line 1 no line at all.
var yamlParserProblems = []string{
	"did not find expected <stream-start>", "did not find expected <document start>",
	"did not find expected node content", "did not find expected '-' indicator", "did not find expected key",
	"did not find expected ',' or ']'", "did not find expected ',' or '}'", "found undefined tag handle",
	"found duplicate %YAML directive", "found incompatible YAML document", "found duplicate %TAG directive",
}

// syntaxError turns a yaml.v3 syntax error into a ConfigError at the right 1-based line and, when a
// flow sequence or mapping is left open, at the line and column of its opening bracket.
func syntaxError(name string, data []byte, err error) *ConfigError {
	ce := &ConfigError{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	line := 0
	if m := lineErr.FindStringSubmatch(ce.Msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		ce.Msg = m[2]
	}
	if !slices.Contains(yamlParserProblems, ce.Msg) {
		ce.Line = line
		return ce
	}
	ce.Line = line + 1
	kinds := ""
	switch ce.Msg {
	case "did not find expected ',' or ']'":
		kinds = "["
	case "did not find expected ',' or '}'":
		kinds = "{"
	case "did not find expected node content": // e.g. "targets: [" at the end of the file
		kinds = "[{"
	}
	if l, col, c, ok := unclosedBracket(data, ce.Line, kinds); ok {
		ce.Line, ce.Column = l, col
		ce.Msg = fmt.Sprintf("'%c' is not closed: %s", c, ce.Msg)
	}
	return ce
}

// unclosedBracket finds the flow collection a parser error is about: the innermost bracket of one of
// kinds still open at the end of line upto (the error's line, which is also the bracket's unless the
// bracket is on line 1). It knows just enough YAML for that: a bracket opens a collection where a value
// can start, and quoted scalars and comments hide brackets.
func unclosedBracket(data []byte, upto int, kinds string) (line, col int, c byte, ok bool) {
	if kinds == "" {
		return 0, 0, 0, false
	}
	type opener struct{ line, off int }
	var stack []opener
	lines := strings.Split(string(data), "\n")
	for l := 1; l <= min(upto, len(lines)); l++ {
		text := lines[l-1]
		valueStart := true
		for i := 0; i < len(text); i++ {
			c := text[i]
			switch {
			case c == '#' && (i == 0 || text[i-1] == ' ' || text[i-1] == '\t'):
				i = len(text) // a comment runs to the end of the line
			case (c == '"' || c == '\'') && valueStart:
				for i++; i < len(text) && text[i] != c; i++ {
					if c == '"' && text[i] == '\\' {
						i++
					}
				}
			case (c == '[' || c == '{') && (valueStart || len(stack) > 0):
				stack = append(stack, opener{l, i})
			case (c == ']' || c == '}') && len(stack) > 0:
				stack = stack[:len(stack)-1]
			}
			valueStart = strings.IndexByte(" \t:,-[{", c) >= 0
		}
	}
	for k := len(stack) - 1; k >= 0; k-- {
		o := stack[k]
		text := lines[o.line-1]
		if strings.IndexByte(kinds, text[o.off]) >= 0 {
			return o.line, utf8.RuneCountInString(text[:o.off]) + 1, text[o.off], true
		}
	}
	return 0, 0, 0, false
}

// decodeError turns yaml.v3's "line N: cannot unmarshal ..." messages into ConfigErrors naming the key.
func decodeError(file string, err error, lines map[int]string) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return &ConfigError{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var errs []error
	for _, msg := range te.Errors {
		ce := &ConfigError{File: file, Msg: msg}
		if m := lineErr.FindStringSubmatch(msg); m != nil {
			ce.Line, _ = strconv.Atoi(m[1])
			ce.Field = lines[ce.Line]
			ce.Msg = m[2]
		}
		errs = append(errs, ce)
	}
	return errors.Join(errs...)
}

// fieldByTag finds the field of struct t whose yaml tag is name.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag := yamlName(f); tag != "" && tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tagNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if tag := yamlName(t.Field(i)); tag != "" {
			names = append(names, tag)
		}
	}
	return names
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// ApplySet applies one --set override "section.key=value" (e.g. "training.lr=1e-4",
// "training.betas=[0.9,0.95]", "lora.targets=qkv,proj"). The value is parsed as YAML for the field's type,
// except that string fields take the text verbatim. Call it before Resolve: Load does.
func ApplySet(cfg *Config, kv string) error {
	fail := func(format string, args ...any) error {
		return &ConfigError{File: cfg.source, Field: "--set " + kv, Msg: fmt.Sprintf(format, args...)}
	}
	key, value, ok := strings.Cut(kv, "=")
	if !ok {
		return fail("want section.key=value")
	}
	key = strings.TrimSpace(key)
	v := reflect.ValueOf(cfg).Elem()
	parts := strings.Split(key, ".")
	for i, p := range parts {
		f, ok := fieldByTag(v.Type(), p)
		if !ok {
			where := strings.Join(parts[:i], ".")
			if where == "" {
				where = "the top level"
			}
			return fail("unknown key %s (known keys in %s: %s)", strings.Join(parts[:i+1], "."), where, strings.Join(tagNames(v.Type()), ", "))
		}
		v = v.FieldByIndex(f.Index)
		if i < len(parts)-1 && v.Kind() != reflect.Struct {
			return fail("%s is a value, not a section", strings.Join(parts[:i+1], "."))
		}
	}
	if v.Kind() == reflect.Struct {
		return fail("%s is a section; set one of its keys (%s)", key, strings.Join(tagNames(v.Type()), ", "))
	}
	switch {
	case v.Kind() == reflect.String:
		v.SetString(value)
		return nil
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String && !strings.HasPrefix(strings.TrimSpace(value), "["):
		var list []string
		for _, s := range strings.Split(value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
		v.Set(reflect.ValueOf(list))
		return nil
	}
	if strings.TrimSpace(value) == "" {
		return fail("empty value for %s (want a %s)", key, v.Type())
	}
	fresh := reflect.New(v.Type())
	if err := yaml.Unmarshal([]byte(value), fresh.Interface()); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
		msg = strings.TrimPrefix(msg, "line 1: ")
		return fail("%s", msg)
	}
	v.Set(fresh.Elem())
	return nil
}

// Resolve fills the defaults that depend on other keys: checkpoint.dir = <logging.dir>/checkpoints when
// empty, training.final_weight_decay = training.weight_decay when null.
func (c *Config) Resolve() {
	if c.Checkpoint.Dir == "" && c.Logging.Dir != "" {
		c.Checkpoint.Dir = strings.TrimSuffix(c.Logging.Dir, "/") + "/checkpoints"
	}
	if c.Training.FinalWeightDecay == nil {
		wd := c.Training.WeightDecay
		c.Training.FinalWeightDecay = &wd
	}
}

// Source is the file name (or "<defaults>") the config was read from.
func (c *Config) Source() string { return c.source }

// Print writes the config as YAML, in the same layout as configs/demo.yaml.
func Print(w io.Writer, c *Config) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return fmt.Errorf("train: print config %s: %w", c.source, err)
	}
	return enc.Close()
}

// Validate checks every value and returns all problems at once (errors.Join of *ConfigError), each
// naming the field and the allowed range.
func (c *Config) Validate() error {
	v := &validator{file: c.source}
	m := &c.Model
	v.atLeast("model.embed_dim", m.EmbedDim, 1)
	v.atLeast("model.pred_dim", m.PredDim, 1)
	v.atLeast("model.depth", m.Depth, 1)
	v.heads("model.heads", m.Heads, "model.pred_dim", m.PredDim)
	v.positive("model.mlp_ratio", m.MLPRatio)
	v.atLeast("model.img", m.Img, 1)
	if v.atLeast("model.patch", m.Patch, 1) && m.Img >= 1 && m.Img%m.Patch != 0 {
		v.add("model.patch", "must divide model.img (%d), got %d", m.Img, m.Patch)
	}
	v.atLeast("model.tubelet", m.Tubelet, 1)
	if m.Encoder.Dim != m.EmbedDim {
		v.add("model.encoder.dim", "must equal model.embed_dim (%d): the predictor reads encoder tokens, got %d", m.EmbedDim, m.Encoder.Dim)
	}
	v.atLeast("model.encoder.depth", m.Encoder.Depth, 1)
	v.heads("model.encoder.heads", m.Encoder.Heads, "model.encoder.dim", m.Encoder.Dim)
	v.atLeast("model.encoder.mlp_hidden", m.Encoder.MLPHidden, 1)
	v.oneOf("model.precision", m.Precision, precisions)
	v.atLeast("model.action_dim", m.ActionDim, 1)
	v.atLeast("model.state_dim", m.StateDim, 1)

	l := &c.LoRA
	if v.atLeast("lora.r", l.R, 1) && m.PredDim >= 1 && l.R > m.PredDim {
		v.add("lora.r", "must be in [1, model.pred_dim=%d], got %d", m.PredDim, l.R)
	}
	v.positive("lora.alpha", l.Alpha)
	if !(l.Dropout >= 0 && l.Dropout < 1) {
		v.add("lora.dropout", "must be in [0, 1), got %v", l.Dropout)
	}
	v.oneOf("lora.path", l.Path, loraPaths)
	if len(l.Targets) == 0 {
		v.add("lora.targets", "must name at least one of %s", strings.Join(loraTargets, ", "))
	}
	for i, t := range l.Targets {
		if !slices.Contains(loraTargets, t) {
			v.add("lora.targets", "must be a subset of %s, got %q", strings.Join(loraTargets, ", "), t)
		} else if slices.Index(l.Targets, t) != i {
			v.add("lora.targets", "lists %q twice", t)
		}
	}

	d := &c.Data
	switch {
	case d.Source == "":
		v.add("data.source", "must be set to a local dataset folder or gs://bucket/prefix")
	case strings.HasPrefix(d.Source, "gs://"):
		if _, _, err := ParseGCSURL(d.Source); err != nil {
			v.add("data.source", "%v", err)
		}
	}
	v.oneOf("data.format", d.Format, formats)
	if d.Format == FormatLeRobot {
		if d.Camera == "" {
			v.add("data.camera", "must name a video or image feature of the LeRobot dataset")
		}
		if err := d.LeRobot.Validate(); err != nil {
			v.add("data."+strings.SplitN(err.Error(), ":", 2)[0], "%s", strings.TrimSpace(strings.SplitN(err.Error(), ":", 2)[1]))
		}
		if d.SuccessOnly || d.IdleFilter {
			v.add("data.success_only", "and data.idle_filter need DROID's file_path and joint velocities; LeRobot datasets have neither")
		}
		if d.LeRobot.Convert == "ee_pose" && (m.ActionDim != 7 || m.StateDim != 7) {
			v.add("model.action_dim", "and model.state_dim must be 7 with data.lerobot.convert: ee_pose (the official state and pose deltas), got %d and %d", m.ActionDim, m.StateDim)
		}
	} else {
		v.oneOf("data.camera", d.Camera, cameras)
	}
	v.atLeast("data.frames", d.Frames, 2)
	v.positive("data.fps", d.FPS)
	v.atLeast("data.batch_size", d.BatchSize, 1)
	v.atLeast("data.workers", d.Workers, 1)
	v.atLeast("data.shuffle_buffer", d.ShuffleBuffer, 0)
	v.atLeast("data.val_episodes", d.ValEpisodes, 0)

	t := &c.Training
	v.atLeast("training.steps", t.Steps, 1)
	v.atLeast("training.grad_accum", t.GradAccum, 1)
	v.oneOf("training.optimizer", t.Optimizer, optimizers)
	v.positive("training.lr", t.LR)
	if len(t.Betas) != 2 {
		v.add("training.betas", "must be 2 values [beta1, beta2], got %d", len(t.Betas))
	} else {
		for i, b := range t.Betas {
			if !(b >= 0 && b < 1) {
				v.add(fmt.Sprintf("training.betas[%d]", i), "must be in [0, 1), got %v", b)
			}
		}
	}
	v.positive("training.eps", t.Eps)
	v.nonNegative("training.weight_decay", t.WeightDecay)
	if t.FinalWeightDecay != nil {
		v.nonNegative("training.final_weight_decay", *t.FinalWeightDecay)
	}
	s := &t.Schedule
	v.oneOf("training.schedule.kind", s.Kind, scheduleKinds)
	v.atLeast("training.schedule.warmup", s.Warmup, 0)
	v.atLeast("training.schedule.decay", s.Decay, 0)
	v.nonNegative("training.schedule.start_lr", s.StartLR)
	v.nonNegative("training.schedule.final_lr", s.FinalLR)
	if t.Steps >= 1 && s.Warmup >= 0 && s.Decay >= 0 {
		if s.Kind == "wsd" && s.Warmup+s.Decay > t.Steps {
			v.add("training.schedule", "warmup (%d) + decay (%d) must be <= training.steps (%d)", s.Warmup, s.Decay, t.Steps)
		} else if s.Warmup > t.Steps {
			v.add("training.schedule.warmup", "must be <= training.steps (%d), got %d", t.Steps, s.Warmup)
		}
	}
	v.nonNegative("training.clip_grad_norm", t.ClipGradNorm)
	if d.Frames >= 2 && (t.AutoSteps < 1 || t.AutoSteps > d.Frames-1) {
		v.add("training.auto_steps", "must be in [1, data.frames-1 = %d], got %d", d.Frames-1, t.AutoSteps)
	}
	v.positive("training.loss_exp", t.LossExp)
	v.positive("training.loss_scale.init", t.LossScale.Init)
	v.atLeast("training.loss_scale.growth_interval", t.LossScale.GrowthInterval, 1)
	if m.Precision == "fp16" && !t.LossScale.Enabled {
		v.add("training.loss_scale.enabled", "must be true when model.precision is fp16 (fp16 gradients underflow without scaling)")
	}
	if v.atLeast("training.val_every", t.ValEvery, 0) && t.ValEvery > 0 && d.ValEpisodes < 1 {
		v.add("training.val_every", "is %d but data.val_episodes is %d; hold out at least 1 episode or set val_every to 0", t.ValEvery, d.ValEpisodes)
	}

	lg := &c.Logging
	if lg.Dir == "" {
		v.add("logging.dir", "must be set (the run folder)")
	}
	v.atLeast("logging.every", lg.Every, 1)
	v.oneOf("logging.progress", lg.Progress, progressModes)

	ck := &c.Checkpoint
	v.atLeast("checkpoint.every", ck.Every, 0)
	v.atLeast("checkpoint.keep_last", ck.KeepLast, 0)
	if ck.GCSSync.URL != "" {
		if _, _, err := ParseGCSURL(ck.GCSSync.URL); err != nil {
			v.add("checkpoint.gcs_sync.url", "%v", err)
		}
		v.positive("checkpoint.gcs_sync.every_minutes", ck.GCSSync.EveryMinutes)
		v.positive("checkpoint.gcs_sync.final_minutes", ck.GCSSync.FinalMinutes)
	}
	return errors.Join(v.errs...)
}

// validator collects every problem instead of stopping at the first.
type validator struct {
	file string
	errs []error
}

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, &ConfigError{File: v.file, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) atLeast(field string, got, min int) bool {
	if got < min {
		v.add(field, "must be >= %d, got %d", min, got)
		return false
	}
	return true
}

func (v *validator) positive(field string, got float64) {
	if !(got > 0) || math.IsInf(got, 0) {
		v.add(field, "must be > 0, got %v", got)
	}
}

func (v *validator) nonNegative(field string, got float64) {
	if !(got >= 0) || math.IsInf(got, 0) {
		v.add(field, "must be >= 0, got %v", got)
	}
}

func (v *validator) oneOf(field, got string, allowed []string) {
	if !slices.Contains(allowed, got) {
		v.add(field, "must be one of %s, got %q", strings.Join(allowed, "|"), got)
	}
}

// heads checks that heads divides dim and leaves a head dim of at least 6: 3-D RoPE gives each axis
// 2·floor(floor(head_dim/3)/2) dims (spec §4.1), which is 0 below 6.
func (v *validator) heads(field string, heads int, dimField string, dim int) {
	if !v.atLeast(field, heads, 1) || dim < 1 {
		return
	}
	if dim%heads != 0 {
		v.add(field, "must divide %s (%d), got %d", dimField, dim, heads)
		return
	}
	if hd := dim / heads; hd < 6 {
		v.add(field, "gives head dim %s/heads = %d; 3-D RoPE needs >= 6 (spec §4.1)", dimField, hd)
	}
}
