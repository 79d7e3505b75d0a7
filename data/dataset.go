package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Source is where a dataset version directory lives: a local directory or a GCS prefix.
type Source interface {
	// Open opens the file name (relative to the dataset directory) for sequential reading.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// List returns the names of the files in the dataset directory, sorted; used only when there is
	// no dataset_info.json.
	List(ctx context.Context) ([]string, error)
	// String names the source in messages ("testdata/droid_sample", "gs://bucket/prefix").
	String() string
}

// FSSource reads a dataset directory from an fs.FS.
type FSSource struct {
	FS   fs.FS
	Name string // for messages
	Dir  string // the local directory FS reads, if it is one (NewDirSource): see LocalPath
}

// NewDirSource reads the local directory dir.
func NewDirSource(dir string) *FSSource { return &FSSource{FS: os.DirFS(dir), Name: dir, Dir: dir} }

// LocalPath returns the path of name on the local file system, when the source is a local directory:
// readers that need random access or an external program (FFmpeg) use the file in place instead of
// copying it.
func (s *FSSource) LocalPath(name string) (string, bool) {
	if s.Dir == "" || !fs.ValidPath(name) {
		return "", false
	}
	return filepath.Join(s.Dir, filepath.FromSlash(name)), true
}

func (s *FSSource) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := s.FS.Open(name)
	if err != nil {
		return nil, fmt.Errorf("data: open %s: %w", path.Join(s.Name, name), err)
	}
	return f, nil
}

func (s *FSSource) List(ctx context.Context) ([]string, error) {
	entries, err := fs.ReadDir(s.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("data: list %s: %w", s.Name, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func (s *FSSource) String() string { return s.Name }

// OpenSource opens a local directory or a gs://bucket/prefix URL. GCS is read anonymously (DROID is a
// public bucket) with the default GCSOptions (retries reported on standard error);
// STORAGE_EMULATOR_HOST redirects it to an emulator.
func OpenSource(ctx context.Context, pathOrURL string) (Source, error) {
	return OpenSourceWith(ctx, pathOrURL, GCSOptions{})
}

// OpenSourceWith is OpenSource with the GCS request bounds and retry reporting of gcs.
func OpenSourceWith(ctx context.Context, pathOrURL string, gcs GCSOptions) (Source, error) {
	if strings.HasPrefix(pathOrURL, "gs://") {
		return NewAnonymousGCSSource(ctx, pathOrURL, gcs)
	}
	st, err := os.Stat(pathOrURL)
	if err != nil {
		return nil, fmt.Errorf("data: open source: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("data: open source %s: not a directory", pathOrURL)
	}
	return NewDirSource(pathOrURL), nil
}

// DatasetInfo is the part of TFDS's dataset_info.json (the DatasetInfo proto in JSON) that locates
// shards (droid-rlds §1). int64 fields are JSON strings there.
type DatasetInfo struct {
	Name        string      `json:"name"`
	Version     string      `json:"version,omitempty"`
	FileFormat  string      `json:"fileFormat,omitempty"`
	ModuleName  string      `json:"moduleName,omitempty"`
	Description string      `json:"description,omitempty"`
	Splits      []SplitInfo `json:"splits"`
}

// SplitInfo is one split of DatasetInfo.
type SplitInfo struct {
	Name             string    `json:"name"`
	NumBytes         jsonInt64 `json:"numBytes,omitempty"`
	ShardLengths     []int64   `json:"-"`
	RawShardLengths  []string  `json:"shardLengths"`
	FilepathTemplate string    `json:"filepathTemplate,omitempty"`
}

// jsonInt64 accepts an int64 written as a JSON string (proto3 JSON) or a number.
type jsonInt64 int64

func (v *jsonInt64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("int64 %s: %w", b, err)
	}
	*v = jsonInt64(n)
	return nil
}

func (v jsonInt64) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatInt(int64(v), 10) + `"`), nil
}

// DefaultFilepathTemplate is TFDS's default shard file name template.
const DefaultFilepathTemplate = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"

// DatasetInfoFile is the name of the TFDS metadata file.
const DatasetInfoFile = "dataset_info.json"

// ParseDatasetInfo parses dataset_info.json.
func ParseDatasetInfo(b []byte) (*DatasetInfo, error) {
	var info DatasetInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("data: parse %s: %w", DatasetInfoFile, err)
	}
	if info.Name == "" {
		return nil, fmt.Errorf("data: parse %s: missing name", DatasetInfoFile)
	}
	for i := range info.Splits {
		sp := &info.Splits[i]
		sp.ShardLengths = make([]int64, len(sp.RawShardLengths))
		for j, s := range sp.RawShardLengths {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("data: parse %s: splits[%d].shardLengths[%d] = %q, want a non-negative integer", DatasetInfoFile, i, j, s)
			}
			sp.ShardLengths[j] = n
		}
	}
	return &info, nil
}

// MarshalDatasetInfo writes info in the TFDS JSON form (int64 as strings).
func MarshalDatasetInfo(info *DatasetInfo) ([]byte, error) {
	cp := *info
	cp.Splits = make([]SplitInfo, len(info.Splits))
	for i, sp := range info.Splits {
		sp.RawShardLengths = make([]string, len(sp.ShardLengths))
		for j, n := range sp.ShardLengths {
			sp.RawShardLengths[j] = strconv.FormatInt(n, 10)
		}
		cp.Splits[i] = sp
	}
	return json.MarshalIndent(&cp, "", "  ")
}

// Shard is one TFRecord file of a split.
type Shard struct {
	Name     string // file name inside the dataset directory
	Index    int    // position in the split
	Episodes int64  // records, from shardLengths; −1 when unknown
}

// Shards expands the split's filepathTemplate into its shard file names, in shard order:
// {DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y} gives droid_101-train.tfrecord-00000-of-02048.
// {SHARD_INDEX} and {NUM_SHARDS} (5 digits) are accepted too.
func (info *DatasetInfo) Shards(split string) ([]Shard, error) {
	for _, sp := range info.Splits {
		if sp.Name != split {
			continue
		}
		tmpl := sp.FilepathTemplate
		if tmpl == "" {
			tmpl = DefaultFilepathTemplate
		}
		format := info.FileFormat
		if format == "" {
			format = "tfrecord"
		}
		n := len(sp.ShardLengths)
		shards := make([]Shard, n)
		for i := range shards {
			r := strings.NewReplacer(
				"{DATASET}", info.Name,
				"{SPLIT}", sp.Name,
				"{FILEFORMAT}", format,
				"{SHARD_X_OF_Y}", fmt.Sprintf("%05d-of-%05d", i, n),
				"{SHARD_INDEX}", fmt.Sprintf("%05d", i),
				"{NUM_SHARDS}", fmt.Sprintf("%05d", n),
			)
			shards[i] = Shard{Name: r.Replace(tmpl), Index: i, Episodes: sp.ShardLengths[i]}
		}
		return shards, nil
	}
	names := make([]string, len(info.Splits))
	for i, sp := range info.Splits {
		names[i] = sp.Name
	}
	return nil, fmt.Errorf("data: %s: no split %q, have %v", info.Name, split, names)
}

// FindShards returns the shards of split: named from dataset_info.json when the source has one (no
// listing needed, droid-rlds §1), otherwise every listed file whose name contains "-SPLIT.tfrecord".
func FindShards(ctx context.Context, src Source, split string) ([]Shard, error) {
	rc, err := src.Open(ctx, DatasetInfoFile)
	if err == nil {
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("data: read %s/%s: %w", src, DatasetInfoFile, err)
		}
		info, err := ParseDatasetInfo(b)
		if err != nil {
			return nil, fmt.Errorf("%w (in %s)", err, src)
		}
		return info.Shards(split)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	names, lerr := src.List(ctx)
	if lerr != nil {
		return nil, lerr
	}
	var shards []Shard
	for _, n := range names {
		if strings.Contains(n, "-"+split+".tfrecord") {
			shards = append(shards, Shard{Name: n, Index: len(shards), Episodes: -1})
		}
	}
	if len(shards) == 0 {
		return nil, fmt.Errorf("data: %s: no %s and no *-%s.tfrecord* files", src, DatasetInfoFile, split)
	}
	return shards, nil
}

// ShardPart is a unit of work: the records of a shard whose index within the shard is ≡ Part mod Parts.
// Parts > 1 only when there are fewer shards than workers in total, so that nobody idles.
type ShardPart struct {
	Shard
	Part, Parts int
}

// AssignShards returns the work of one worker of one rank for one epoch. The shards are permuted with
// a generator seeded by (seed, epoch), identically on every rank, and dealt round-robin over the
// worldSize·numWorkers global workers; global worker g = rank·numWorkers + worker takes units g,
// g+G, g+2G, … When there are fewer shards than global workers, each shard is split into
// ceil(G/shards) parts by record index so every worker gets work.
func AssignShards(shards []Shard, seed uint64, epoch, rank, worldSize, worker, numWorkers int) []ShardPart {
	if worldSize < 1 || numWorkers < 1 || rank < 0 || rank >= worldSize || worker < 0 || worker >= numWorkers {
		panic(fmt.Sprintf("data: AssignShards: rank %d of %d, worker %d of %d", rank, worldSize, worker, numWorkers))
	}
	if len(shards) == 0 {
		return nil
	}
	g, G := rank*numWorkers+worker, worldSize*numWorkers
	parts := (G + len(shards) - 1) / len(shards)
	units := make([]ShardPart, 0, len(shards)*parts)
	for _, s := range shards {
		for p := range parts {
			units = append(units, ShardPart{Shard: s, Part: p, Parts: parts})
		}
	}
	rng := rand.New(rand.NewPCG(seed, uint64(epoch)))
	rng.Shuffle(len(units), func(i, j int) { units[i], units[j] = units[j], units[i] })
	var mine []ShardPart
	for i := g; i < len(units); i += G {
		mine = append(mine, units[i])
	}
	return mine
}

// sortedCopy returns names sorted (listing order is not guaranteed by every backend).
func sortedCopy(names []string) []string {
	out := append([]string(nil), names...)
	sort.Strings(out)
	return out
}
