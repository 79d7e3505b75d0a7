package train

// Resuming a run (checkpoint.resume, --resume):
//
//	""          start fresh (rundir.go refuses a folder that holds an earlier run)
//	auto        the newest valid checkpoint in checkpoint.dir; when that folder has none and
//	            checkpoint.gcs_sync.url is set, the run folder is first restored from the bucket
//	gs://b/p    restore the run folder from that mirror, then as auto
//	DIR         the newest valid checkpoint in DIR
//	FILE        exactly that checkpoint
//
// "Valid" means it reads back with every checksum right: a corrupt newer checkpoint is reported, set
// aside as <name>.corrupt (so that retention and later resumes skip it) and the next older one is used.
// A named FILE is never replaced by another.
//
// The checkpoint's own copy of the configuration is compared with the current one. Changes that make the
// saved state meaningless (the model's shape, the frozen encoder, the adapters' rank, scaling and
// targets, the optimizer whose moments are saved) are refused; every other change (learning rate,
// steps, data...) is listed before training continues. A checkpoint past training.steps is refused: the
// schedule of the configuration has ended before the saved step, so continuing would train on a
// schedule that never described this run, and exporting it under this configuration would mislabel it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// corruptSuffix is appended to a checkpoint that failed its checksums during a resume.
const corruptSuffix = ".corrupt"

// resumeFatal are the config keys (or key prefixes ending in ".") whose change makes a checkpoint
// meaningless: the adapters' shapes and scaling, the frozen model they were trained against, and the
// optimizer state's layout.
var resumeFatal = []string{
	"model.embed_dim", "model.pred_dim", "model.depth", "model.heads", "model.mlp_ratio", "model.img",
	"model.patch", "model.tubelet", "model.extrinsics", "model.encoder.",
	"lora.r", "lora.alpha", "lora.targets", "lora.rslora", "training.optimizer",
}

// resumeQuiet are keys whose change is not worth a line: how the run is resumed and displayed, and where
// its folder is (a run restored on another machine).
var resumeQuiet = []string{"checkpoint.resume", "logging.progress", "logging.every", "logging.dir", "checkpoint.dir"}

func matchesKey(list []string, key string) bool {
	for _, k := range list {
		if key == k || (strings.HasSuffix(k, ".") && strings.HasPrefix(key, k)) {
			return true
		}
	}
	return false
}

// findResume picks the checkpoint to resume from (nil for a fresh start), restoring the run folder from
// GCS first where checkpoint.resume asks for it, and checks it against the current configuration.
func (t *trainer) findResume(ctx context.Context) (*Checkpoint, string, error) {
	c := t.cfg.Checkpoint
	var dir, file string
	switch {
	case c.Resume == "":
		return nil, "", nil
	case strings.HasPrefix(c.Resume, "gs://"):
		if err := t.restoreRunDir(ctx, c.Resume); err != nil {
			return nil, "", err
		}
		dir = c.Dir
	case c.Resume == "auto":
		dir = c.Dir
		if names, err := checkpointFiles(dir); err == nil && len(names) == 0 && c.GCSSync.URL != "" {
			t.progress.Printf("resume: no checkpoint in %s; restoring the run folder from %s", dir, c.GCSSync.URL)
			if err := t.restoreRunDir(ctx, c.GCSSync.URL); err != nil {
				return nil, "", err
			}
		}
	default:
		st, err := os.Stat(c.Resume)
		if err != nil {
			return nil, "", fmt.Errorf("train: checkpoint.resume: %w", err)
		}
		if st.IsDir() {
			dir = c.Resume
		} else {
			file = c.Resume
		}
	}
	var ck *Checkpoint
	var path string
	if file != "" {
		var err error
		if ck, err = ReadCheckpoint(file); err != nil {
			return nil, "", err // names the file and what is wrong; a named file is never replaced
		}
		path = file
	} else {
		var err error
		if ck, path, err = t.newestValid(dir, c.Resume); err != nil || ck == nil {
			return nil, "", err
		}
	}
	if err := t.checkResume(ck, path); err != nil {
		return nil, "", err
	}
	return ck, path, nil
}

// newestValid reads the checkpoints of dir from the newest down and returns the first that verifies.
// Corrupt ones are reported, and set aside when dir is the run's own checkpoint folder.
func (t *trainer) newestValid(dir, asked string) (*Checkpoint, string, error) {
	names, err := checkpointFiles(dir)
	if err != nil {
		return nil, "", fmt.Errorf("train: resume from %s: %w", dir, err)
	}
	if len(names) == 0 {
		if asked != "auto" {
			return nil, "", fmt.Errorf("train: resume from %s: %w", asked, ErrNoCheckpoint)
		}
		return nil, "", nil
	}
	own := filepath.Clean(dir) == filepath.Clean(t.cfg.Checkpoint.Dir)
	var corrupt []string
	for i := len(names) - 1; i >= 0; i-- {
		p := filepath.Join(dir, names[i])
		ck, err := ReadCheckpoint(p)
		var ce *CorruptCheckpointError
		if errors.As(err, &ce) {
			corrupt = append(corrupt, names[i])
			msg := fmt.Sprintf("warning: resume: %v", err)
			if own {
				if rerr := os.Rename(p, p+corruptSuffix); rerr == nil {
					msg += "; set aside as " + names[i] + corruptSuffix
				}
			}
			if i > 0 {
				msg += "; falling back to " + names[i-1]
			}
			t.progress.Printf("%s", msg)
			continue
		}
		if err != nil {
			return nil, "", err
		}
		return ck, p, nil
	}
	return nil, "", fmt.Errorf("train: resume from %s: every checkpoint is corrupt (%s)", dir, strings.Join(corrupt, ", "))
}

// restoreRunDir downloads the GCS mirror url into logging.dir.
func (t *trainer) restoreRunDir(ctx context.Context, url string) error {
	client, err := t.gcsClient(ctx)
	if err != nil {
		return err
	}
	n, err := RestoreFromGCS(ctx, client, url, t.cfg.Logging.Dir, t.gcsOptions())
	if err != nil {
		return err
	}
	t.progress.Printf("resume: restored %d files from %s into %s", n, url, t.cfg.Logging.Dir)
	return nil
}

// checkResume refuses a checkpoint the current configuration cannot meaningfully continue, and lists
// the other changes.
func (t *trainer) checkResume(ck *Checkpoint, path string) error {
	step := ck.Header.Step
	if steps := t.cfg.Training.Steps; step > steps {
		return fmt.Errorf("train: resume %s: the checkpoint is at step %d, past training.steps = %d: raise training.steps to train on, or export its adapter with `vjepa-vk export --checkpoint %s --out DIR`",
			path, step, steps, path)
	}
	fatal, other, err := configChanges(ck.Header.Config, t.cfg)
	if err != nil {
		return fmt.Errorf("train: resume %s: %w", path, err)
	}
	if len(fatal) > 0 {
		return fmt.Errorf("train: resume %s: the config changed in ways the saved adapters and optimizer state cannot follow:\n  %s\nrestore these values, or start a new run (another logging.dir, or --overwrite)",
			path, strings.Join(fatal, "\n  "))
	}
	if len(other) > 0 {
		t.progress.Printf("resume: the config changed since the checkpoint at step %d:\n  %s", step, strings.Join(other, "\n  "))
	}
	if step == t.cfg.Training.Steps {
		t.progress.Printf("resume: the checkpoint is at the last step (training.steps = %d): nothing left to train", step)
	}
	return nil
}

// restoreState loads a checkpoint's optimizer state, LoRA weights, step, data position and loss scale.
func (t *trainer) restoreState(ck *Checkpoint, path string) error {
	var pos struct{ Batches int }
	if err := json.Unmarshal(ck.Header.Data, &pos); err != nil {
		return fmt.Errorf("train: resume %s: data position: %w", path, err)
	}
	if err := json.Unmarshal(ck.Header.Extra["adam_steps"], &t.opt.steps); err != nil {
		return fmt.Errorf("train: resume %s: adam_steps: %w", path, err)
	}
	t.resumeNorm = ck.Header.Extra["normalization"] // checked against the dataset's when it is opened
	for _, st := range t.opt.state() {
		src, ok := ck.Tensor(st.name)
		if !ok {
			return fmt.Errorf("train: resume %s: no tensor %q (was it written with another lora/optimizer config?)", path, st.name)
		}
		if uint64(len(src.Data)) != st.t.Bytes() {
			return fmt.Errorf("train: resume %s: %s: %d bytes, want %d (shape %v)", path, st.name, len(src.Data), st.t.Bytes(), st.t.Shape)
		}
		if err := t.d.WriteBytes(st.t, src.Data); err != nil {
			return err
		}
	}
	t.step, t.batches = ck.Header.Step, pos.Batches
	*t.scaler = ck.Header.LossScale
	return nil
}

// configChanges compares the YAML a checkpoint was saved with to the current config: fatal lists the
// changes of resumeFatal keys, other the rest, each as "key: old -> new". Keys one side lacks (another
// program version) are never fatal.
func configChanges(saved string, cur *Config) (fatal, other []string, err error) {
	old, err := flattenYAML(saved)
	if err != nil {
		return nil, nil, fmt.Errorf("config saved in the checkpoint: %w", err)
	}
	now, err := flattenConfig(cur)
	if err != nil {
		return nil, nil, err
	}
	keys := map[string]bool{}
	for k := range old {
		keys[k] = true
	}
	for k := range now {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		a, inOld := old[k]
		b, inNow := now[k]
		if inOld && inNow && formatValue(a) == formatValue(b) || matchesKey(resumeQuiet, k) {
			continue
		}
		line := fmt.Sprintf("%s: %s -> %s", k, describe(a, inOld), describe(b, inNow))
		if inOld && inNow && matchesKey(resumeFatal, k) {
			fatal = append(fatal, line)
		} else {
			other = append(other, line)
		}
	}
	return fatal, other, nil
}

func describe(v any, present bool) string {
	if !present {
		return "(absent)"
	}
	return formatValue(v)
}

// formatValue prints a decoded YAML value: lists as [a, b], everything else with %v.
func formatValue(v any) string {
	if l, ok := v.([]any); ok {
		parts := make([]string, len(l))
		for i, x := range l {
			parts[i] = formatValue(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	if v == nil {
		return "null"
	}
	return fmt.Sprint(v)
}

// flattenConfig is the config as dotted keys ("training.lr") and decoded YAML values.
func flattenConfig(c *Config) (map[string]any, error) {
	var sb strings.Builder
	if err := Print(&sb, c); err != nil {
		return nil, err
	}
	return flattenYAML(sb.String())
}

func flattenYAML(text string) (map[string]any, error) {
	var tree map[string]any
	if err := yaml.Unmarshal([]byte(text), &tree); err != nil {
		return nil, err
	}
	out := map[string]any{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			out[prefix+k] = v
		}
	}
	walk("", tree)
	return out, nil
}
