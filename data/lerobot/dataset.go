package lerobot

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/vjepa-vk/vjepa-vk/data"
)

// Mapping says how a dataset's columns become the model's inputs. YAML keys match the struct tags one to
// one (train's data.lerobot section).
type Mapping struct {
	// State is the column of the state vector; default observation.state.
	State string `yaml:"state"`
	// Action is the column of the action vector; default action. Ignored with convert: ee_pose.
	Action string `yaml:"action"`
	// ActionReduce says which of the actions recorded between two sampled frames i_k and i_{k+1} the clip
	// keeps as its action k: first (the one recorded at frame i_k, LeRobot's pairing; default), last,
	// mean (velocities) or sum (per-step deltas).
	ActionReduce string `yaml:"action_reduce"`
	// Convert is "" (the vectors as they are) or ee_pose: the state vector holds an absolute end-effector
	// pose [x y z roll pitch yaw gripper] (metres, extrinsic xyz Euler radians, gripper 0..1), which
	// becomes the official 7-D state, and the actions become DROID's pose deltas (spec §7.4–7.5).
	Convert string `yaml:"convert"`
	// PoseIndices are the positions of x, y, z, roll, pitch, yaw, gripper in the state vector for
	// convert: ee_pose; default [0, 1, 2, 3, 4, 5, 6].
	PoseIndices []int `yaml:"pose_indices"`
	// Normalize is "" (off; default), mean_std or min_max: the state and action columns are normalized
	// per dimension with the dataset's statistics (meta/stats.json, or v2.1's episodes_stats.jsonl) as
	// LeRobot's policies normalize them, row by row before action_reduce. Not with convert: ee_pose,
	// whose official 7-D inputs the pretrained encoders expect as they are.
	Normalize string `yaml:"normalize"`
}

// Reductions and conversions Mapping accepts.
var (
	ActionReductions = []string{"first", "last", "mean", "sum"}
	Conversions      = []string{"", "ee_pose"}
)

// DefaultMapping is observation.state and action, as recorded.
func DefaultMapping() Mapping {
	return Mapping{State: "observation.state", Action: "action", ActionReduce: "first", PoseIndices: []int{0, 1, 2, 3, 4, 5, 6}}
}

// Validate checks the mapping on its own (Open checks it against the dataset).
func (m Mapping) Validate() error {
	switch {
	case m.State == "":
		return fmt.Errorf("lerobot.state: must name the state column")
	case m.Convert == "" && m.Action == "":
		return fmt.Errorf("lerobot.action: must name the action column (or set convert: ee_pose)")
	case !slices.Contains(ActionReductions, m.ActionReduce):
		return fmt.Errorf("lerobot.action_reduce: must be one of %s, got %q", strings.Join(ActionReductions, "|"), m.ActionReduce)
	case !slices.Contains(Conversions, m.Convert):
		return fmt.Errorf("lerobot.convert: must be \"\" or ee_pose, got %q", m.Convert)
	case !slices.Contains(Normalizations, m.Normalize):
		return fmt.Errorf("lerobot.normalize: must be \"\", mean_std or min_max, got %q", m.Normalize)
	case m.Convert == "ee_pose" && m.Normalize != "":
		return fmt.Errorf("lerobot.normalize: must be \"\" with convert: ee_pose (the pretrained encoders take the official 7-D state and pose deltas as they are), got %s", m.Normalize)
	case m.Convert == "ee_pose" && len(m.PoseIndices) != 7:
		return fmt.Errorf("lerobot.pose_indices: want 7 positions (x y z roll pitch yaw gripper), got %v", m.PoseIndices)
	}
	for _, i := range m.PoseIndices {
		if i < 0 {
			return fmt.Errorf("lerobot.pose_indices: %v has a negative position", m.PoseIndices)
		}
	}
	return nil
}

// Options configure Open.
type Options struct {
	Mapping Mapping
	Split   string // an entry of info.json's splits; default train
	// FFmpeg is the ffmpeg executable; "" finds it on PATH.
	FFmpeg string
	// DecodeBatch is how many clips the Loader's workers decode with one FFmpeg process; 0 means
	// DefaultDecodeBatch, 1 one process per clip.
	DecodeBatch int
	// CacheDir holds local copies of the video files of a remote (gs://) dataset, which FFmpeg needs to
	// seek in; "" makes a temporary folder that Close removes.
	CacheDir string
}

// Dataset is an opened LeRobot dataset; it implements data.Format.
type Dataset struct {
	Info     *Info
	Episodes []EpisodeMeta // the split's episodes, by episode index

	src      data.Source
	opts     Options
	shards   []data.Shard
	shardEps [][]int // per shard, indices into Episodes in file order
	dec      VideoDecoder
	sdim     int // state width (the column's, or 7 with ee_pose)
	adim     int
	norm     *Normalization // nil unless Mapping.Normalize

	mu       sync.Mutex
	cacheDir string
	ownCache bool
	fetched  map[string]*sync.Once
	fetchErr map[string]error
}

// Open reads meta/info.json and the episode list of src and checks the mapping against the features.
func Open(ctx context.Context, src data.Source, opts Options) (*Dataset, error) {
	if opts.Split == "" {
		opts.Split = "train"
	}
	def := DefaultMapping()
	m := &opts.Mapping
	if m.State == "" {
		m.State = def.State
	}
	if m.Action == "" && m.Convert == "" {
		m.Action = def.Action
	}
	if m.ActionReduce == "" {
		m.ActionReduce = def.ActionReduce
	}
	if len(m.PoseIndices) == 0 {
		m.PoseIndices = def.PoseIndices
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("lerobot: %s: %w", src, err)
	}
	d := &Dataset{src: src, opts: opts, dec: VideoDecoder{FFmpeg: opts.FFmpeg}, fetched: map[string]*sync.Once{}, fetchErr: map[string]error{}}
	b, err := d.readAll(ctx, InfoFile)
	if err != nil {
		return nil, err
	}
	if d.Info, err = ParseInfo(fmt.Sprintf("%s/%s", src, InfoFile), b); err != nil {
		return nil, err
	}
	if err := d.checkMapping(); err != nil {
		return nil, err
	}
	if opts.Mapping.Normalize != "" {
		if d.norm, err = d.readNormalization(ctx); err != nil {
			return nil, err
		}
	}
	var all []EpisodeMeta
	if d.Info.Version() == 3 {
		all, err = readEpisodesV3(ctx, d)
	} else {
		all, err = readEpisodesV2(ctx, d)
	}
	if err != nil {
		return nil, err
	}
	lo, hi, err := splitRange(d.Info, opts.Split)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, src)
	}
	for _, e := range all {
		if e.Index >= lo && e.Index < hi {
			d.Episodes = append(d.Episodes, e)
		}
	}
	if len(d.Episodes) == 0 {
		return nil, fmt.Errorf("lerobot: %s: split %s (episodes %d:%d) has no episodes", src, opts.Split, lo, hi)
	}
	// Shards: the data files, in order of their first episode; each holds its episodes in index order.
	byFile := map[string]int{}
	for i, e := range d.Episodes {
		s, ok := byFile[e.DataFile]
		if !ok {
			s = len(d.shards)
			byFile[e.DataFile] = s
			d.shards = append(d.shards, data.Shard{Name: e.DataFile, Index: s})
			d.shardEps = append(d.shardEps, nil)
		}
		d.shardEps[s] = append(d.shardEps[s], i)
		d.shards[s].Episodes++
	}
	return d, nil
}

// checkMapping checks that the mapped columns exist as float vectors and sets the widths.
func (d *Dataset) checkMapping() error {
	m := d.opts.Mapping
	vec := func(field, col string) (int, error) {
		f, ok := d.Info.Features[col]
		if !ok {
			return 0, fmt.Errorf("lerobot: %s: %s: no feature %q in %s (have %s)", d.src, field, col, InfoFile, strings.Join(d.vectorKeys(), ", "))
		}
		if f.DType != "float32" && f.DType != "float64" {
			return 0, fmt.Errorf("lerobot: %s: %s: feature %q is %s in %s, want float32 or float64", d.src, field, col, f.DType, InfoFile)
		}
		return f.Width(), nil
	}
	var err error
	if d.sdim, err = vec("lerobot.state", m.State); err != nil {
		return err
	}
	if m.Convert == "ee_pose" {
		for _, i := range m.PoseIndices {
			if i >= d.sdim {
				return fmt.Errorf("lerobot: %s: lerobot.pose_indices %v: %s has %d values", d.src, m.PoseIndices, m.State, d.sdim)
			}
		}
		d.sdim, d.adim = 7, 7
		return nil
	}
	d.adim, err = vec("lerobot.action", m.Action)
	return err
}

func (d *Dataset) vectorKeys() []string {
	var out []string
	for _, k := range d.Info.FeatureKeys() {
		if t := d.Info.Features[k].DType; t == "float32" || t == "float64" {
			out = append(out, k)
		}
	}
	return out
}

// Close removes the temporary copies of remote files.
func (d *Dataset) Close() error {
	if d.ownCache && d.cacheDir != "" {
		return os.RemoveAll(d.cacheDir)
	}
	return nil
}

func (d *Dataset) String() string { return d.src.String() }

// Shards are the data files (one per episode in v2.x, many episodes each in v3.0).
func (d *Dataset) Shards() []data.Shard { return d.shards }

// Dims are the state and action widths the mapping gives.
func (d *Dataset) Dims() (int, int) { return d.sdim, d.adim }

// Normalization is what Mapping.Normalize does to the vectors, with its statistics; nil when off.
func (d *Dataset) Normalization() *Normalization { return d.norm }

// FPS is the recording rate.
func (d *Dataset) FPS() float64 { return d.Info.FPS }

// CheckClip checks the window and that the camera is a video or image feature.
func (d *Dataset) CheckClip(cfg data.ClipConfig) error {
	if err := cfg.ValidateWindow(); err != nil {
		return err
	}
	f, ok := d.Info.Features[cfg.Camera]
	if !ok || !f.IsCamera() {
		return fmt.Errorf("clip.camera: %q is not a camera of %s (%s has %s)", cfg.Camera, d.src, InfoFile, strings.Join(d.Info.Cameras(), ", "))
	}
	return nil
}

// readAll reads a small file of the dataset.
func (d *Dataset) readAll(ctx context.Context, name string) ([]byte, error) {
	rc, err := d.src.Open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("lerobot: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("lerobot: read %s/%s: %w", d.src, name, err)
	}
	return b, nil
}

// openTable opens a parquet file of the dataset: in place on a local directory, read into memory from
// other sources.
func (d *Dataset) openTable(ctx context.Context, name string) (*table, error) {
	full := fmt.Sprintf("%s/%s", d.src, name)
	if lp, ok := localPath(d.src, name); ok {
		f, err := os.Open(lp)
		if err != nil {
			return nil, fmt.Errorf("lerobot: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lerobot: %w", err)
		}
		// The file stays open while the table lives: parquet pages are read on demand. The garbage
		// collector's finalizer on *os.File closes it; tables live for one shard.
		return openTable(full, f, st.Size())
	}
	b, err := d.readAll(ctx, name)
	if err != nil {
		return nil, err
	}
	return openTable(full, bytes.NewReader(b), int64(len(b)))
}

func localPath(src data.Source, name string) (string, bool) {
	l, ok := src.(interface{ LocalPath(string) (string, bool) })
	if !ok {
		return "", false
	}
	return l.LocalPath(name)
}

// localFile returns a path FFmpeg can open for the dataset file name: the file itself on a local
// directory, else a copy fetched once into the cache folder.
func (d *Dataset) localFile(ctx context.Context, name string) (string, error) {
	if lp, ok := localPath(d.src, name); ok {
		return lp, nil
	}
	d.mu.Lock()
	if d.cacheDir == "" {
		if d.opts.CacheDir != "" {
			d.cacheDir = d.opts.CacheDir
		} else {
			dir, err := os.MkdirTemp("", "vjepa-vk-lerobot-")
			if err != nil {
				d.mu.Unlock()
				return "", fmt.Errorf("lerobot: video cache: %w", err)
			}
			d.cacheDir, d.ownCache = dir, true
		}
	}
	once := d.fetched[name]
	if once == nil {
		once = &sync.Once{}
		d.fetched[name] = once
	}
	dst := filepath.Join(d.cacheDir, filepath.FromSlash(name))
	d.mu.Unlock()
	once.Do(func() {
		err := d.fetch(ctx, name, dst)
		d.mu.Lock()
		d.fetchErr[name] = err
		if err != nil {
			d.fetched[name] = nil // a later call tries again
		}
		d.mu.Unlock()
	})
	d.mu.Lock()
	err := d.fetchErr[name]
	d.mu.Unlock()
	return dst, err
}

// fetch copies name to dst through a temporary file, so a partial copy is never used.
func (d *Dataset) fetch(ctx context.Context, name, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil // fetched by an earlier run into the same cache folder
	}
	rc, err := d.src.Open(ctx, name)
	if err != nil {
		return fmt.Errorf("lerobot: %w", err)
	}
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("lerobot: video cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".part-*")
	if err != nil {
		return fmt.Errorf("lerobot: video cache: %w", err)
	}
	_, err = io.Copy(tmp, rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("lerobot: copy %s/%s: %w", d.src, name, err)
	}
	return nil
}

// frames are the columns of one data file that clips read, with its rows split by episode.
type frames struct {
	d      *Dataset
	t      *table
	times  []float64 // [rows] timestamp
	epi    []int64   // [rows] episode_index
	state  []float64 // rows back to back, sdim each (the column's width)
	action []float64 // adim each, nil with ee_pose
	images map[string][][]byte
}

// EachEpisode reads the data file of shard once and calls fn with each of its episodes that keep
// accepts, in episode order. A file that cannot be read makes each of its episodes bad; an episode whose
// rows disagree with the metadata is bad alone.
func (d *Dataset) EachEpisode(ctx context.Context, shard data.Shard, keep func(int) bool, fn func(int, data.ClipEpisode) error,
	bad func(int, error), corrupt func(*data.CorruptRecordError)) error {
	eps := d.shardEps[shard.Index]
	var records []int
	for r := range eps {
		if keep == nil || keep(r) {
			records = append(records, r)
		}
	}
	if len(records) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fr, err := d.readFrames(ctx, shard.Name)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, r := range records {
			if bad != nil {
				bad(r, err)
			}
		}
		return nil
	}
	// Row ranges of the episodes in the file: rows are grouped by episode_index.
	ranges := map[int64][2]int{}
	for i := 0; i < len(fr.epi); {
		j := i
		for j < len(fr.epi) && fr.epi[j] == fr.epi[i] {
			j++
		}
		if _, dup := ranges[fr.epi[i]]; dup {
			ranges[fr.epi[i]] = [2]int{-1, -1} // split in two runs
		} else {
			ranges[fr.epi[i]] = [2]int{i, j}
		}
		i = j
	}
	for _, r := range records {
		meta := &d.Episodes[eps[r]]
		rg, ok := ranges[int64(meta.Index)]
		var err error
		switch {
		case !ok:
			err = fmt.Errorf("lerobot: %s: no rows with episode_index %d (listed in %s)", fr.t.name, meta.Index, meta.MetaFile)
		case rg[0] < 0:
			err = fmt.Errorf("lerobot: %s: the rows of episode_index %d are not contiguous", fr.t.name, meta.Index)
		case rg[1]-rg[0] != meta.Length:
			err = fmt.Errorf("lerobot: %s: episode %d has %d rows, %s says length %d", fr.t.name, meta.Index, rg[1]-rg[0], meta.MetaFile, meta.Length)
		}
		if err != nil {
			if bad != nil {
				bad(r, err)
			}
			continue
		}
		if err := fn(r, &episode{fr: fr, meta: meta, lo: rg[0], hi: rg[1]}); err != nil {
			return err
		}
	}
	return nil
}

// readFrames reads the columns clips need from one data file and checks their widths.
func (d *Dataset) readFrames(ctx context.Context, name string) (*frames, error) {
	t, err := d.openTable(ctx, name)
	if err != nil {
		return nil, err
	}
	fr := &frames{d: d, t: t, images: map[string][][]byte{}}
	if fr.times, err = t.scalars("timestamp"); err != nil {
		return nil, err
	}
	if fr.epi, err = t.ints("episode_index"); err != nil {
		return nil, err
	}
	m := d.opts.Mapping
	vector := func(col string) ([]float64, error) {
		want := d.Info.Features[col].Width()
		vals, off, err := t.floats(col)
		if err != nil {
			return nil, err
		}
		for i := 0; i+1 < len(off); i++ {
			if n := off[i+1] - off[i]; n != want {
				return nil, fmt.Errorf("lerobot: %s: column %q row %d: %d values, want %d (%s features.%s.shape)", t.name, col, i, n, want, InfoFile, col)
			}
		}
		return vals, nil
	}
	if fr.state, err = vector(m.State); err != nil {
		return nil, err
	}
	if m.Convert == "" {
		if fr.action, err = vector(m.Action); err != nil {
			return nil, err
		}
	}
	if n := d.norm; n != nil {
		n.apply(fr.state, &n.State.FeatureStats)
		n.apply(fr.action, &n.Action.FeatureStats)
	}
	return fr, nil
}

// imageColumn returns the encoded images of camera, read on first use.
func (fr *frames) imageColumn(camera string) ([][]byte, error) {
	if im, ok := fr.images[camera]; ok {
		return im, nil
	}
	vals, off, err := fr.t.blobs(camera)
	if err != nil {
		return nil, err
	}
	im := make([][]byte, fr.t.rows())
	for i := range im {
		if off[i+1]-off[i] != 1 {
			return nil, fmt.Errorf("lerobot: %s: column %q row %d: no image bytes (images stored by path are not supported; embed them)", fr.t.name, camera, i)
		}
		im[i] = vals[off[i]]
	}
	fr.images[camera] = im
	return im, nil
}

// episode is one episode's rows [lo, hi) of a data file; it implements data.ClipEpisode.
type episode struct {
	fr     *frames
	meta   *EpisodeMeta
	lo, hi int
}

// Meta is the episode's metadata.
func (e *episode) Meta() *EpisodeMeta { return e.meta }

func (e *episode) Info() data.EpisodeInfo {
	in := data.EpisodeInfo{Steps: e.hi - e.lo, FilePath: fmt.Sprintf("%s#episode_index=%d", e.meta.DataFile, e.meta.Index)}
	if len(e.meta.Tasks) > 0 {
		in.Instruction = e.meta.Tasks[0]
	}
	return in
}

// stateRow returns the mapped state of row i (relative to the episode).
func (e *episode) stateRow(i int) []float64 {
	w := e.fr.d.Info.Features[e.fr.d.opts.Mapping.State].Width()
	return e.fr.state[(e.lo+i)*w : (e.lo+i+1)*w]
}

func (e *episode) actionRow(i int) []float64 {
	w := e.fr.d.adim
	return e.fr.action[(e.lo+i)*w : (e.lo+i+1)*w]
}

// pose returns row i's state as a 7-D pose (convert: ee_pose).
func (e *episode) pose(i int) data.State {
	row := e.stateRow(i)
	var s data.State
	for k, j := range e.fr.d.opts.Mapping.PoseIndices {
		s[k] = row[j]
	}
	return s
}

// MakeClip cuts a clip as data.MakeClip does on RLDS (spec §7.3): frames every ceil(fps_dataset / fps)
// rows from a start drawn uniformly over the valid ones (or cfg.Start); then the mapped states and
// actions.
func (e *episode) MakeClip(cfg data.ClipConfig, filters data.FilterConfig, rng *rand.Rand) (*data.Clip, error) {
	if filters.SuccessOnly || filters.Idle.Enabled {
		return nil, fmt.Errorf("lerobot: the success-only and idle filters need DROID's file_path and joint velocities")
	}
	d := e.fr.d
	cfg.SourceFPS = d.Info.FPS
	steps := e.hi - e.lo
	maxStart := cfg.MaxStart(steps)
	if maxStart < 0 {
		return nil, &data.SkipError{Reason: data.SkipShort, Detail: fmt.Sprintf("%d frames, need more than %d (%d frames every %d at %g fps)", steps, cfg.Window(), cfg.Frames, cfg.Stride(), d.Info.FPS)}
	}
	if cfg.Start > maxStart {
		return nil, &data.SkipError{Reason: data.SkipShort, Detail: fmt.Sprintf("start %d past last valid start %d of %d frames", cfg.Start, maxStart, steps)}
	}
	start := cfg.Start
	if start < 0 {
		start = rng.IntN(maxStart + 1)
	}
	clip := &data.Clip{Camera: cfg.Camera, Start: start, Indices: cfg.Indices(start), Extrinsics: make([][6]float64, cfg.Frames)}
	clip.Times = make([]float64, cfg.Frames)
	for k, i := range clip.Indices {
		clip.Times[k] = e.fr.times[e.lo+i]
	}
	if d.opts.Mapping.Convert == "ee_pose" {
		states := make([]data.State, cfg.Frames)
		for k, i := range clip.Indices {
			states[k] = e.pose(i)
		}
		actions := data.StatesToActions(states)
		if filters.Motion.Enabled && data.IsStatic(actions, filters.Motion) {
			return nil, &data.SkipError{Reason: data.SkipStatic, Detail: fmt.Sprintf("clip at frames %v barely moves", clip.Indices)}
		}
		clip.States, clip.Actions = data.StateRows(states), data.ActionRows(actions)
	} else {
		if filters.Motion.Enabled {
			return nil, fmt.Errorf("lerobot: the motion filter needs end-effector poses (convert: ee_pose)")
		}
		clip.States = make([][]float64, cfg.Frames)
		for k, i := range clip.Indices {
			clip.States[k] = slices.Clone(e.stateRow(i))
		}
		clip.Actions = make([][]float64, cfg.Frames-1)
		for k := range clip.Actions {
			clip.Actions[k] = e.reduceActions(clip.Indices[k], clip.Indices[k+1])
		}
	}
	if d.Info.Features[cfg.Camera].DType == "image" {
		im, err := e.fr.imageColumn(cfg.Camera)
		if err != nil {
			return nil, err
		}
		clip.Frames = make([][]byte, cfg.Frames)
		for k, i := range clip.Indices {
			clip.Frames[k] = im[e.lo+i]
		}
	}
	return clip, nil
}

// EachRow gives every row's mapped state and the mapped action from it to the row a stride later (the
// reduction of the recorded actions between the two, or with ee_pose the pose delta): every state and
// action a clip of cfg can hold. Reading them costs nothing more: the columns are in memory.
func (e *episode) EachRow(cfg data.ClipConfig, fn func(state, action []float64)) error {
	cfg.SourceFPS = e.fr.d.Info.FPS
	stride := cfg.Stride()
	ee := e.fr.d.opts.Mapping.Convert == "ee_pose"
	steps := e.hi - e.lo
	for i := range steps {
		var state, action []float64
		if ee {
			p := e.pose(i)
			state = p[:]
			if i+stride < steps {
				a := data.StatesToActions([]data.State{p, e.pose(i + stride)})[0]
				action = a[:]
			}
		} else {
			state = e.stateRow(i)
			if i+stride < steps {
				action = e.reduceActions(i, i+stride)
			}
		}
		fn(state, action)
	}
	return nil
}

// reduceActions combines the actions of rows [i, j) per Mapping.ActionReduce.
func (e *episode) reduceActions(i, j int) []float64 {
	switch e.fr.d.opts.Mapping.ActionReduce {
	case "last":
		return slices.Clone(e.actionRow(j - 1))
	case "mean", "sum":
		out := make([]float64, e.fr.d.adim)
		for r := i; r < j; r++ {
			for k, v := range e.actionRow(r) {
				out[k] += v
			}
		}
		if e.fr.d.opts.Mapping.ActionReduce == "mean" {
			for k := range out {
				out[k] /= float64(j - i)
			}
		}
		return out
	}
	return slices.Clone(e.actionRow(i))
}

// DecodeClip decodes the clip's frames: images with Go's decoders, videos with FFmpeg at the frames'
// timestamps (the episode's from_timestamp in the file plus each row's timestamp, as LeRobot does).
func (e *episode) DecodeClip(ctx context.Context, pre *data.Preprocessor, dst []float32, clip *data.Clip) error {
	return e.fr.d.DecodeClips(ctx, pre, []data.DecodeJob{{Episode: e, Clip: clip, Dst: dst}})[0]
}

// Images decodes the frames of camera at rows (relative to the episode) as recorded, uncropped: image
// features with Go's decoders, a video's with one FFmpeg process. Inference on one step (vjepa-vk plan
// --episode) takes them as it takes image files.
func (e *episode) Images(ctx context.Context, camera string, rows []int) ([]image.Image, error) {
	d := e.fr.d
	if f, ok := d.Info.Features[camera]; !ok || !f.IsCamera() {
		return nil, fmt.Errorf("lerobot: %s: %q is not a camera (%s has %s)", d.src, camera, InfoFile, strings.Join(d.Info.Cameras(), ", "))
	}
	for _, i := range rows {
		if i < 0 || i >= e.hi-e.lo {
			return nil, fmt.Errorf("lerobot: episode %d: row %d of %d", e.meta.Index, i, e.hi-e.lo)
		}
	}
	out := make([]image.Image, len(rows))
	if d.Info.Features[camera].DType == "image" {
		im, err := e.fr.imageColumn(camera)
		if err != nil {
			return nil, err
		}
		for k, i := range rows {
			if out[k], _, err = image.Decode(bytes.NewReader(im[e.lo+i])); err != nil {
				return nil, fmt.Errorf("lerobot: episode %d row %d %s: %w", e.meta.Index, i, camera, err)
			}
		}
		return out, nil
	}
	clip := &data.Clip{Camera: camera, Times: make([]float64, len(rows))}
	order := slices.Clone(rows) // FFmpeg's requests want increasing times
	slices.Sort(order)
	order = slices.Compact(order)
	clip.Times = clip.Times[:len(order)]
	for k, i := range order {
		clip.Times[k] = e.fr.times[e.lo+i]
	}
	r, err := e.videoRequest(ctx, clip)
	if err != nil {
		return nil, err
	}
	frames, err := d.dec.Decode(ctx, r.Path, r.Times, r.FPS)
	if err != nil {
		return nil, err
	}
	for k, i := range rows {
		f := frames[slices.Index(order, i)]
		img := image.NewNRGBA(image.Rect(0, 0, f.W, f.H))
		for p := range f.W * f.H {
			copy(img.Pix[4*p:], f.RGB[3*p:3*p+3])
			img.Pix[4*p+3] = 255
		}
		out[k] = img
	}
	return out, nil
}

// videoRequest is what FFmpeg must decode for the clip.
func (e *episode) videoRequest(ctx context.Context, clip *data.Clip) (VideoRequest, error) {
	d := e.fr.d
	span, ok := e.meta.Videos[clip.Camera]
	if !ok {
		return VideoRequest{}, fmt.Errorf("lerobot: episode %d has no video %q", e.meta.Index, clip.Camera)
	}
	path, err := d.localFile(ctx, span.File)
	if err != nil {
		return VideoRequest{}, err
	}
	r := VideoRequest{Path: path, Times: make([]float64, len(clip.Times)), FPS: d.Info.FPS}
	for k, t := range clip.Times {
		r.Times[k] = span.From + t
	}
	if vi := d.Info.Features[clip.Camera].Info; vi != nil && vi.FPS > 0 {
		r.FPS = vi.FPS
	}
	return r, nil
}

// DefaultDecodeBatch is how many clips one FFmpeg process decodes by default: the process start
// (~0.2 CPU-s, see VideoDecoder) is then a small part of a clip's cost, and a worker holds 8 clips.
const DefaultDecodeBatch = 8

// DecodeBatch is Options.DecodeBatch, or DefaultDecodeBatch.
func (d *Dataset) DecodeBatch() int {
	if d.opts.DecodeBatch > 0 {
		return d.opts.DecodeBatch
	}
	return DefaultDecodeBatch
}

// DecodeClips decodes the clips of jobs (episodes of d): image features with Go's decoders, and every
// video clip among them with one FFmpeg process (VideoDecoder.DecodeAll).
func (d *Dataset) DecodeClips(ctx context.Context, pre *data.Preprocessor, jobs []data.DecodeJob) []error {
	errs := make([]error, len(jobs))
	var reqs []VideoRequest
	var at []int
	for i, j := range jobs {
		e, ok := j.Episode.(*episode)
		switch {
		case !ok || e.fr.d != d:
			panic(fmt.Sprintf("lerobot: DecodeClips: job %d is an episode of another dataset (%T)", i, j.Episode))
		case j.Clip.Frames != nil:
			errs[i] = pre.Clip(j.Dst, j.Clip.Frames)
		default:
			r, err := e.videoRequest(ctx, j.Clip)
			if err != nil {
				errs[i] = err
				continue
			}
			reqs, at = append(reqs, r), append(at, i)
		}
	}
	frames, verrs := d.dec.DecodeAll(ctx, reqs)
	for k, i := range at {
		if errs[i] = verrs[k]; errs[i] != nil {
			continue
		}
		for t, f := range frames[k] {
			pre.FrameRGB(jobs[i].Dst, len(frames[k]), t, f.RGB, f.W, f.H)
		}
	}
	return errs
}

// TimestampGaps lists the rows whose timestamp is not the previous one plus 1/fps (within
// TimestampTolerance), as LeRobot's check_timestamps_sync does.
func (e *episode) TimestampGaps() []string {
	var out []string
	fps := e.fr.d.Info.FPS
	for i := e.lo + 1; i < e.hi; i++ {
		if dt := e.fr.times[i] - e.fr.times[i-1]; math.Abs(dt-1/fps) > TimestampTolerance {
			out = append(out, fmt.Sprintf("row %d: timestamp %.6g s after the previous one, want 1/fps = %.6g s", i-e.lo, dt, 1/fps))
		}
	}
	return out
}

// Description is what data check reports of a LeRobot dataset's metadata.
type Description struct {
	Version     string            `json:"codebase_version"`
	Robot       string            `json:"robot_type,omitempty"`
	FPS         float64           `json:"fps"`
	Episodes    int               `json:"total_episodes"`
	Frames      int               `json:"total_frames"`
	Cameras     map[string]string `json:"cameras"` // key → "video av1 160x90" / "image 160x90"
	State       string            `json:"state"`
	Action      string            `json:"action"`
	StateNames  []string          `json:"state_names,omitempty"`
	ActionNames []string          `json:"action_names,omitempty"`
}

// Describe summarises info.json for data check.
func (d *Dataset) Describe() any {
	in := d.Info
	desc := Description{Version: in.CodebaseVersion, Robot: in.RobotType, FPS: in.FPS, Episodes: in.TotalEpisodes,
		Frames: in.TotalFrames, Cameras: map[string]string{}, State: d.opts.Mapping.State, Action: d.opts.Mapping.Action}
	for _, k := range in.Cameras() {
		f := in.Features[k]
		s := f.DType
		if f.Info != nil && f.Info.Codec != "" {
			s += " " + f.Info.Codec
		}
		if len(f.Shape) == 3 {
			s += fmt.Sprintf(" %dx%d", f.Shape[1], f.Shape[0])
		}
		desc.Cameras[k] = s
	}
	if f := in.Features[d.opts.Mapping.State]; f != nil {
		desc.StateNames = f.NameList()
	}
	if f := in.Features[d.opts.Mapping.Action]; f != nil && d.opts.Mapping.Convert == "" {
		desc.ActionNames = f.NameList()
	}
	return desc
}
