package train

// The run folder (logging.dir) and what a run leaves in it:
//
//	config.yaml                        the resolved configuration of the latest start (RunConfigFile)
//	metrics.jsonl                      per-step metrics (metrics.go)
//	events.out.tfevents.<time>.<host>  TensorBoard events, one file per start
//	checkpoints/                       trainer checkpoints and manifest.json (checkpoint.dir; may be elsewhere)
//	adapter/                           the exported PEFT adapter
//	predictor_merged.safetensors       the merged predictor, with checkpoint.export.merged
//
// A new run refuses a folder that holds any of these (or a GCS mirror that does), naming --resume and
// --overwrite, rather than appending to another run's metrics and replacing its checkpoints; --overwrite
// deletes exactly these and nothing else. Files the user put there are never touched.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"cloud.google.com/go/storage"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/model"
)

// RunConfigFile is the resolved configuration, written into the run folder at every start.
const RunConfigFile = "config.yaml"

// MergedFile is the merged predictor written by checkpoint.export.merged.
const MergedFile = "predictor_merged.safetensors"

// AdapterDir is the folder of the exported PEFT adapter inside the run folder.
const AdapterDir = "adapter"

// ErrRunDirNotEmpty is wrapped by the error of a new run into a folder that holds an earlier run.
var ErrRunDirNotEmpty = errors.New("holds an earlier run")

// outputNames are the files written atomically (through model.NewPendingFile) whose temp files
// isLeftoverTemp recognises; checkpoint files are matched by checkpointStep.
var outputNames = map[string]bool{
	ManifestFile: true, RunConfigFile: true, MetricsFile: true, MergedFile: true,
	model.AdapterWeightsFile: true, model.AdapterConfigFile: true,
}

var (
	renameioTemp   = regexp.MustCompile(`^\.(.+?)[0-9]+$`)     // .<name><random digits>: model.NewPendingFile
	oldTrainTemp   = regexp.MustCompile(`^\..+\.[0-9]+\.tmp$`) // .<name>.<digits>.tmp: train before renameio
	oldModelTemp   = regexp.MustCompile(`^.+\.tmp-[0-9]+$`)    // <name>.tmp-<digits>: model before renameio
	eventsFileName = regexp.MustCompile(`^events\.out\.tfevents\.`)
)

// isLeftoverTemp reports whether name is the temporary file of an atomic write by this program, which a
// process killed mid-write (kill -9, OOM, preemption) leaves behind.
func isLeftoverTemp(name string) bool {
	if oldTrainTemp.MatchString(name) || oldModelTemp.MatchString(name) {
		return true
	}
	m := renameioTemp.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	if outputNames[m[1]] {
		return true
	}
	_, ok := checkpointStep(m[1])
	return ok
}

// removeLeftoverTemps deletes the temp files of interrupted writes in each folder and returns their
// paths. Missing folders are skipped.
func removeLeftoverTemps(dirs ...string) ([]string, error) {
	var removed []string
	for _, dir := range dirs {
		des, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("train: clean %s: %w", dir, err)
		}
		for _, de := range des {
			if de.Type().IsRegular() && isLeftoverTemp(de.Name()) {
				p := filepath.Join(dir, de.Name())
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return removed, fmt.Errorf("train: clean %s: %w", dir, err)
				}
				removed = append(removed, p)
			}
		}
	}
	return removed, nil
}

// runLayout locates a run's outputs.
type runLayout struct {
	dir     string // logging.dir
	ckpt    string // checkpoint.dir
	ckptRel string // checkpoint.dir relative to dir, slash-separated; "" when outside it
}

func layoutOf(c *Config) runLayout {
	l := runLayout{dir: filepath.Clean(c.Logging.Dir), ckpt: filepath.Clean(c.Checkpoint.Dir)}
	if rel, err := filepath.Rel(l.dir, l.ckpt); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && rel != "." {
		l.ckptRel = filepath.ToSlash(rel)
	}
	return l
}

// isArtifact reports whether rel (slash-separated, relative to the run folder) is an output of a run.
func (l runLayout) isArtifact(rel string) bool {
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	switch {
	case dir == "":
		return base == MetricsFile || base == RunConfigFile || base == MergedFile || eventsFileName.MatchString(base) || isLeftoverTemp(base)
	case dir == AdapterDir:
		return true
	case l.ckptRel != "" && dir == l.ckptRel:
		return isCheckpointFolderFile(base)
	}
	return false
}

// isCheckpointFolderFile: the store's files, a checkpoint set aside as corrupt, and temp files.
func isCheckpointFolderFile(name string) bool {
	_, ckpt := checkpointStep(strings.TrimSuffix(name, corruptSuffix))
	return ckpt || name == ManifestFile || isLeftoverTemp(name)
}

// localArtifacts lists the outputs of earlier runs in the run folder and the checkpoint folder.
func (l runLayout) localArtifacts() ([]string, error) {
	var found []string
	add := func(dir string, keep func(name string, isDir bool) bool) error {
		des, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, de := range des {
			if keep(de.Name(), de.IsDir()) {
				found = append(found, filepath.Join(dir, de.Name()))
			}
		}
		return nil
	}
	err := add(l.dir, func(name string, isDir bool) bool {
		if isDir {
			return name == AdapterDir
		}
		return l.isArtifact(name)
	})
	if err == nil {
		err = add(l.ckpt, func(name string, isDir bool) bool { return !isDir && isCheckpointFolderFile(name) })
	}
	if err != nil {
		return nil, fmt.Errorf("train: look for an earlier run: %w", err)
	}
	sort.Strings(found)
	return found, nil
}

// removeLocalArtifacts deletes the outputs of earlier runs (--overwrite), then the checkpoint folder if
// that left it empty.
func (l runLayout) removeLocalArtifacts() error {
	found, err := l.localArtifacts()
	if err != nil {
		return err
	}
	for _, p := range found {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("train: --overwrite: %w", err)
		}
	}
	os.Remove(l.ckpt) // only succeeds when empty
	return nil
}

// remoteArtifacts lists the run outputs under the GCS mirror (object names relative to its prefix).
func (l runLayout) remoteArtifacts(ctx context.Context, client *storage.Client, url string, o data.GCSOptions) ([]string, error) {
	bucket, prefix, err := ParseGCSURL(url)
	if err != nil {
		return nil, err
	}
	remote, err := listRemote(ctx, client, bucket, prefix, o, nil)
	if err != nil {
		return nil, fmt.Errorf("train: look for an earlier run in %s: %w", url, err)
	}
	var found []string
	for rel := range remote {
		if l.isArtifact(rel) {
			found = append(found, rel)
		}
	}
	sort.Strings(found)
	return found, nil
}

// removeRemoteArtifacts deletes the run outputs under the GCS mirror (--overwrite).
func removeRemoteArtifacts(ctx context.Context, client *storage.Client, url string, rels []string, o data.GCSOptions) error {
	bucket, prefix, err := ParseGCSURL(url)
	if err != nil {
		return err
	}
	for _, rel := range rels {
		name := rel
		if prefix != "" {
			name = prefix + "/" + rel
		}
		obj := client.Bucket(bucket).Object(name).Retryer(o.RetryOptions("delete gs://"+bucket+"/"+name, nil)...)
		if err := obj.Delete(ctx); err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
			return fmt.Errorf("train: --overwrite: delete gs://%s/%s: %w", bucket, name, err)
		}
	}
	return nil
}

// notEmptyError is the refusal of a new run into an earlier run's folder.
func notEmptyError(where string, found []string) error {
	show := found
	if len(show) > 3 {
		show = append(show[:3:3], fmt.Sprintf("and %d more", len(found)-3))
	}
	return fmt.Errorf("train: %s %w (%s): pass --resume auto to continue it, or --overwrite to delete its outputs and start over",
		where, ErrRunDirNotEmpty, strings.Join(show, ", "))
}

// writeRunConfig writes the resolved configuration to RUN_DIR/config.yaml.
func writeRunConfig(dir string, c *Config) error {
	p := filepath.Join(dir, RunConfigFile)
	err := writeFileAtomic(p, func(w io.Writer) error { return Print(w, c) })
	if err != nil {
		return fmt.Errorf("train: write %s: %w", p, err)
	}
	return nil
}

// prepareRunDir runs before anything heavy: it removes the temp files of interrupted writes, then either
// finds the checkpoint to resume from (resume.go) or makes sure a new run does not land on an earlier
// one (refusing, or deleting its outputs with Options.Overwrite).
func (t *trainer) prepareRunDir(ctx context.Context) error {
	c := t.cfg
	l := layoutOf(c)
	if c.Checkpoint.GCSSync.URL != "" && l.ckptRel == "" {
		return fmt.Errorf("train: checkpoint.gcs_sync.url mirrors logging.dir %s, but checkpoint.dir %s is outside it: its checkpoints would never reach the bucket; put checkpoint.dir inside logging.dir (or leave it empty)", l.dir, l.ckpt)
	}
	if t.opts.Overwrite && c.Checkpoint.Resume != "" {
		return fmt.Errorf("train: --overwrite starts a new run, --resume (checkpoint.resume %q) continues one: pass one of them", c.Checkpoint.Resume)
	}
	removed, err := removeLeftoverTemps(l.dir, l.ckpt, filepath.Join(l.dir, AdapterDir))
	if len(removed) > 0 {
		t.progress.Printf("removed %d temp files left by an interrupted write: %s", len(removed), strings.Join(removed, ", "))
	}
	if err != nil {
		return err
	}
	if c.Checkpoint.Resume != "" {
		t.resumeCk, t.resumePath, err = t.findResume(ctx)
		return err
	}
	found, err := l.localArtifacts()
	if err != nil {
		return err
	}
	var remote []string
	if url := c.Checkpoint.GCSSync.URL; url != "" {
		client, err := t.gcsClient(ctx)
		if err != nil {
			return err
		}
		if remote, err = l.remoteArtifacts(ctx, client, url, t.gcsOptions()); err != nil {
			return err
		}
	}
	if !t.opts.Overwrite {
		if len(found) > 0 {
			return notEmptyError("run folder "+l.dir, found)
		}
		if len(remote) > 0 {
			return notEmptyError("checkpoint.gcs_sync.url "+c.Checkpoint.GCSSync.URL, remote)
		}
		return nil
	}
	if len(found) > 0 {
		t.progress.Printf("--overwrite: deleting %d outputs of an earlier run in %s", len(found), l.dir)
		if err := l.removeLocalArtifacts(); err != nil {
			return err
		}
	}
	if len(remote) > 0 {
		t.progress.Printf("--overwrite: deleting %d objects of an earlier run under %s", len(remote), c.Checkpoint.GCSSync.URL)
		return removeRemoteArtifacts(ctx, t.gcs, c.Checkpoint.GCSSync.URL, remote, t.gcsOptions())
	}
	return nil
}

// openRunDir creates the run folder's files of this start: config.yaml, the metrics writer (dropping the
// records a resume re-does) and the configuration in TensorBoard.
func (t *trainer) openRunDir() error {
	c := t.cfg
	if err := os.MkdirAll(c.Logging.Dir, 0o777); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := writeRunConfig(c.Logging.Dir, c); err != nil {
		return err
	}
	mo := MetricsOptions{JSONL: c.Logging.JSONL, TensorBoard: c.Logging.TensorBoard}
	if c.Checkpoint.Resume != "" {
		mo.PurgeStep = t.step + 1
	}
	var err error
	if t.metrics, err = NewMetricsWriter(c.Logging.Dir, mo); err != nil {
		return err
	}
	return t.metrics.LogConfig(t.step, c)
}
