package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// cacheIdentity is what the cached features, states and actions depend on: a cache built with any other
// value is refused. The fields after Seed are left out of the hash when they have their RLDS values, so
// the hash of an RLDS cache is what it was before LeRobot datasets existed.
type cacheIdentity struct {
	Encoder    model.EncoderConfig
	Checkpoint string
	Precision  string
	Img        int
	Camera     string
	Frames     int
	FPS        float64
	Seed       int64
	Format     string           `json:",omitempty"` // "" for rlds
	LeRobot    *lerobot.Mapping `json:",omitempty"` // the columns and their conversion
	// Normalization holds the statistics data.lerobot.normalize used: a cache of other statistics is
	// refused.
	Normalization *lerobot.Normalization `json:",omitempty"`
}

// cacheConfig is the shape and identity of c's feature cache; norm is what data.lerobot.normalize
// does (nil when off).
func cacheConfig(c *Config, norm *lerobot.Normalization) (data.FeatureCacheConfig, cacheIdentity, error) {
	_, ecfg := modelConfigs(c)
	id := cacheIdentity{Encoder: ecfg, Checkpoint: c.Model.Checkpoint, Precision: c.Model.Precision, Img: c.Model.Img,
		Camera: c.Data.Camera, Frames: c.Data.Frames, FPS: c.Data.FPS, Seed: c.Data.Seed}
	if c.Data.Format == FormatLeRobot {
		m := c.Data.LeRobot
		id.Format, id.LeRobot, id.Normalization = FormatLeRobot, &m, norm
	}
	if c.Model.Checkpoint == "" {
		id.Seed = c.Training.Seed // random-init encoder: the seed is its identity
	}
	h, err := data.ConfigHash(id)
	if err != nil {
		return data.FeatureCacheConfig{}, id, err
	}
	grid := c.Model.Img / c.Model.Patch
	return data.FeatureCacheConfig{Frames: c.Data.Frames, Tokens: grid * grid, Dim: c.Model.EmbedDim,
		StateDim: c.Model.StateDim, ActionDim: c.Model.ActionDim, ConfigHash: h, RecordsPerShard: 256}, id, nil
}

// EncodeOptions choose how much data Encode caches.
type EncodeOptions struct {
	Epochs int       // passes over the episodes (each draws new random clips); default 1
	Out    io.Writer // progress lines; nil discards
}

// Encode runs the frozen encoder over the clips of cfg's data source and writes their features (f16),
// states and actions (of the data's widths) to a feature cache in dir, which `train` reads with data.feature_cache = dir.
func Encode(ctx context.Context, d *vk.Device, cfg *Config, dir string, o EncodeOptions) (int, error) {
	if o.Epochs <= 0 {
		o.Epochs = 1
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	t := &trainer{cfg: cfg, opts: Options{Device: d, Out: o.Out}, d: d}
	t.progress = NewProgress(o.Out, "plain", 0, 1)
	defer t.close()
	pcfg, ecfg := modelConfigs(cfg)
	_, ew, closeW, err := loadWeights(cfg, pcfg, ecfg)
	if err != nil {
		return 0, err
	}
	defer closeW()
	if t.enc, err = model.LoadEncoder(d, ecfg, ew, model.Precision(cfg.Model.Precision)); err != nil {
		return 0, err
	}
	B, T := cfg.Data.BatchSize, cfg.Data.Frames
	if t.ep, err = t.enc.NewPass(B*T, cfg.Model.Tubelet, cfg.Model.Img, cfg.Model.Img); err != nil {
		return 0, err
	}
	s, err := d.NewStream(false)
	if err != nil {
		return 0, err
	}
	defer s.Destroy()
	t.ep.Forward(s)
	if t.format, err = OpenDataset(ctx, cfg, t.gcsOptions()); err != nil {
		return 0, err
	}
	fc, id, err := cacheConfig(cfg, datasetNormalization(cfg, t.format))
	if err != nil {
		return 0, err
	}
	lc := t.loaderConfig()
	lc.Epochs, lc.DropLast, lc.ShuffleBuffer = o.Epochs, false, 0
	l, err := data.NewFormatLoader(ctx, t.format, lc)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	w, err := data.CreateFeatureCache(dir, fc, id)
	if err != nil {
		return 0, err
	}
	n := 0
	per := fc.Tokens * fc.Dim * T
	for {
		b, err := l.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			w.Close()
			return n, err
		}
		if b.B < B { // a last partial batch: pad with the first clip, keep only the real ones
			b = padBatch(b, B)
		}
		if err := t.uploadFrames(b); err != nil {
			w.Close()
			return n, err
		}
		if err := s.Run(); err != nil {
			w.Close()
			return n, err
		}
		feats, err := d.Download(t.ep.Out) // [B·T·HW, E]
		if err != nil {
			w.Close()
			return n, err
		}
		for i, smp := range b.Samples {
			rec := &data.FeatureRecord{SourceShard: smp.ShardIndex, SourceRecord: smp.Record, Start: smp.Clip.Indices[0],
				States: b.States[i*T*b.S : (i+1)*T*b.S], Actions: b.Actions[i*(T-1)*b.A : (i+1)*(T-1)*b.A],
				Features: make([]uint16, per)}
			data.Float32ToF16(rec.Features, feats[i*per:(i+1)*per])
			if err := w.Append(rec); err != nil {
				w.Close()
				return n, err
			}
			n++
		}
		fmt.Fprintf(o.Out, "encoded %d clips\n", n)
	}
	return n, w.Close()
}

// padBatch repeats the first clip until the batch has B clips; Samples keeps only the real ones.
func padBatch(b *data.Batch, B int) *data.Batch {
	p := *b
	T, H, W := b.T, b.H, b.W
	fr, st, ac, ex := 3*T*H*W, T*b.S, (T-1)*b.A, T*6
	for i := b.B; i < B; i++ {
		p.Frames = append(p.Frames, b.Frames[:fr]...)
		p.States = append(p.States, b.States[:st]...)
		p.Actions = append(p.Actions, b.Actions[:ac]...)
		p.Extrinsics = append(p.Extrinsics, b.Extrinsics[:ex]...)
	}
	p.B = B
	return &p
}

// cacheSource yields batches from a feature cache in a seeded order, reshuffled every epoch. As rank
// part of parts data-parallel ranks it yields clips [part·B, (part+1)·B) of each global batch of
// parts·B clips: together the ranks read what one source with the global batch would.
type cacheSource struct {
	c           *data.FeatureCache
	B, T        int
	part, parts int
	seed        uint64
	keep        []int // record indices this source draws from
	order       []int
	epoch       int
	pos         int
	rec         data.FeatureRecord
	feats       []float32
	states      []float32
	actions     []float32
}

func newCacheSource(c *data.FeatureCache, B, T int, seed uint64, keep func(i int) bool, part, parts int) (*cacheSource, error) {
	cs := &cacheSource{c: c, B: B, T: T, seed: seed, part: part, parts: parts}
	for i := 0; i < c.Len(); i++ {
		if keep == nil || keep(i) {
			cs.keep = append(cs.keep, i)
		}
	}
	if len(cs.keep) < B*parts {
		return nil, fmt.Errorf("train: feature cache has %d usable clips, fewer than a batch of %d", len(cs.keep), B*parts)
	}
	cs.shuffle()
	return cs, nil
}

func (cs *cacheSource) shuffle() {
	cs.order = append(cs.order[:0], cs.keep...)
	r := rand.New(rand.NewPCG(cs.seed, uint64(cs.epoch)))
	r.Shuffle(len(cs.order), func(i, j int) { cs.order[i], cs.order[j] = cs.order[j], cs.order[i] })
	cs.pos = 0
}

// next fills the batch tensors' host copies; features [B·T·HW, E] f32, states [B·T, S], actions [B·(T-1), A].
func (cs *cacheSource) next() error {
	cfg := cs.c.Config()
	per := cfg.Frames * cfg.Tokens * cfg.Dim
	cs.feats = cs.feats[:0]
	cs.states, cs.actions = cs.states[:0], cs.actions[:0]
	tmp := make([]float32, per)
	for j := 0; j < cs.B*cs.parts; j++ {
		if cs.pos == len(cs.order) {
			cs.epoch++
			cs.shuffle()
		}
		i := cs.order[cs.pos]
		cs.pos++
		if j/cs.B != cs.part {
			continue // another rank's clip
		}
		if err := cs.c.Read(i, &cs.rec); err != nil {
			return err
		}
		data.F16ToFloat32(tmp, cs.rec.Features)
		cs.feats = append(cs.feats, tmp...)
		cs.states = append(cs.states, cs.rec.States...)
		cs.actions = append(cs.actions, cs.rec.Actions...)
	}
	return nil
}

// skip advances past n batches without reading them (resume).
func (cs *cacheSource) skip(n int) {
	for i := 0; i < n*cs.B*cs.parts; i++ {
		if cs.pos == len(cs.order) {
			cs.epoch++
			cs.shuffle()
		}
		cs.pos++
	}
}
