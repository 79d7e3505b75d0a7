package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LoaderConfig configures a Loader. YAML keys match the struct tags one to one.
type LoaderConfig struct {
	Split         string       `yaml:"split"`          // "train"
	Clip          ClipConfig   `yaml:"clip"`           // spec §7.2–7.3
	Image         ImageConfig  `yaml:"image"`          // spec §7.7
	Filter        FilterConfig `yaml:"filter"`         // all off in the official recipe
	BatchSize     int          `yaml:"batch_size"`     // B
	Workers       int          `yaml:"workers"`        // decode goroutines
	ShuffleBuffer int          `yaml:"shuffle_buffer"` // clips held for shuffling; <= 1 keeps worker order
	Prefetch      int          `yaml:"prefetch"`       // finished batches queued ahead
	Seed          uint64       `yaml:"seed"`
	Epochs        int          `yaml:"epochs"`    // passes over the shards; 0 repeats forever
	DropLast      bool         `yaml:"drop_last"` // drop a final partial batch
	MaxRecordLen  int64        `yaml:"max_record_len"`
	Rank          int          `yaml:"-"` // this process among WorldSize data-parallel ranks
	WorldSize     int          `yaml:"-"`
	// Exchange, when its world has more than one rank, makes this loader one rank's share of a global
	// loader (exchange.go): BatchSize is per rank, and the ranks' batches together are exactly the
	// batches of one loader with Size·BatchSize clips and Size·Workers workers. Rank and WorldSize
	// come from it. Without it, ranks read disjoint shards independently.
	Exchange Exchanger `yaml:"-"`
	// Warn receives corrupt records, truncated shards and malformed episodes (*BadEpisodeError), which
	// are skipped and counted; nil discards them. Workers call it concurrently, on every pass over the
	// data: Warnings reports each problem once.
	Warn func(error) `yaml:"-"`
	// Keep selects the episodes (by shard index and record index within the shard) this loader reads,
	// e.g. a train/validation split; nil keeps every episode.
	Keep func(shard, record int) bool `yaml:"-"`
}

// DefaultLoaderConfig is the official recipe on RLDS (spec §7.8: B = 8) with two workers.
func DefaultLoaderConfig() LoaderConfig {
	return LoaderConfig{
		Split:         "train",
		Clip:          DefaultClipConfig(),
		Image:         DefaultImageConfig(),
		Filter:        DefaultFilterConfig(),
		BatchSize:     8,
		Workers:       2,
		ShuffleBuffer: 64,
		Prefetch:      2,
		Epochs:        0,
		DropLast:      true,
		MaxRecordLen:  DefaultMaxRecordLen,
		WorldSize:     1,
	}
}

// Validate checks the configuration.
func (c *LoaderConfig) Validate() error {
	if err := c.Clip.ValidateWindow(); err != nil {
		return err
	}
	if err := c.Image.Validate(); err != nil {
		return err
	}
	switch {
	case c.BatchSize < 1:
		return fmt.Errorf("batch_size: must be >= 1, got %d", c.BatchSize)
	case c.Workers < 1:
		return fmt.Errorf("workers: must be >= 1, got %d", c.Workers)
	case c.Epochs < 0:
		return fmt.Errorf("epochs: must be >= 0, got %d", c.Epochs)
	case c.WorldSize < 1 || c.Rank < 0 || c.Rank >= c.WorldSize:
		return fmt.Errorf("rank %d of world size %d: want 0 <= rank < world size", c.Rank, c.WorldSize)
	case c.distributed() && c.Epochs != 0:
		return fmt.Errorf("epochs: a loader shared by %d ranks reads endlessly (0), got %d", c.Exchange.Size(), c.Epochs)
	}
	return nil
}

// distributed reports whether the loader is one rank's share of a global loader.
func (c *LoaderConfig) distributed() bool { return c.Exchange != nil && c.Exchange.Size() > 1 }

// fromExchange takes Rank and WorldSize from a distributed loader's Exchange.
func (c *LoaderConfig) fromExchange() {
	if c.distributed() {
		c.Rank, c.WorldSize = c.Exchange.Rank(), c.Exchange.Size()
	}
}

// Counts are the loader's running totals.
type Counts struct {
	Records         int64 `json:"records"`          // good records taken by this loader's shard parts
	CorruptRecords  int64 `json:"corrupt_records"`  // failed a crc or length check
	TruncatedShards int64 `json:"truncated_shards"` // ended inside a record
	BadEpisodes     int64 `json:"bad_episodes"`     // malformed Example or DROID fields, or undecodable JPEG
	Episodes        int64 `json:"episodes"`         // episodes considered for a clip
	ShortEpisodes   int64 `json:"short_episodes"`   // SkipShort
	FailureFiltered int64 `json:"failure_filtered"` // SkipFailure
	IdleFiltered    int64 `json:"idle_filtered"`    // SkipIdle
	StaticFiltered  int64 `json:"static_filtered"`  // SkipStatic
	Clips           int64 `json:"clips"`            // clips produced
}

// counters is Counts updated concurrently.
type counters struct {
	records, corrupt, truncated, bad, episodes, short, failure, idle, static, clips atomic.Int64
}

func (c *counters) snapshot() Counts {
	return Counts{
		Records: c.records.Load(), CorruptRecords: c.corrupt.Load(), TruncatedShards: c.truncated.Load(),
		BadEpisodes: c.bad.Load(), Episodes: c.episodes.Load(), ShortEpisodes: c.short.Load(),
		FailureFiltered: c.failure.Load(), IdleFiltered: c.idle.Load(), StaticFiltered: c.static.Load(),
		Clips: c.clips.Load(),
	}
}

func (c *counters) skip(r SkipReason) {
	switch r {
	case SkipShort:
		c.short.Add(1)
	case SkipFailure:
		c.failure.Add(1)
	case SkipIdle:
		c.idle.Add(1)
	case SkipStatic:
		c.static.Add(1)
	}
}

// Sample is one decoded clip with its provenance.
type Sample struct {
	Shard      string
	ShardIndex int // position of the shard in the split
	Record     int // index of the episode within its shard
	Epoch      int
	Clip       *Clip
	Pixels     []float32 // [3, T, H, W], normalized
}

// Batch is B samples stacked (spec §7.8); float32 throughout, row-major.
type Batch struct {
	B, T, H, W int
	S, A       int       // state and action widths: 7 and 7 on RLDS (spec §7.4–7.5)
	Frames     []float32 // [B, 3, T, H, W]
	States     []float32 // [B, T, S]
	Actions    []float32 // [B, T−1, A]
	Extrinsics []float32 // [B, T, 6], zeros on RLDS
	Samples    []*Sample // provenance; their Pixels are nil (copied into Frames)
}

// Loader streams batches of clips from a Source. Workers read their shards in order and decode clips;
// their outputs are merged round-robin in worker order and passed through a seeded shuffle buffer, so
// the sequence of batches depends only on the configuration (seed, workers, ranks), not on timing.
// Each clip's random choices (start, camera) are seeded by (seed, epoch, shard, record), so they do
// not even depend on the worker count.
type Loader struct {
	parent  context.Context
	cfg     LoaderConfig
	format  Format
	shards  []Shard
	counts  counters
	first   firstEpoch
	batches chan planned
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errOnce sync.Once
	err     error
	done    chan struct{}
	held    *planned     // distributed: the next global batch, waiting for the other ranks
	ahead   *sharedBatch // distributed: the batch after the one Next returns, exchanged, decoding
}

// NewLoader finds the RLDS shards of cfg.Split in src and starts the workers.
func NewLoader(ctx context.Context, src Source, cfg LoaderConfig) (*Loader, error) {
	cfg.fromExchange()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("data: loader: %w", err)
	}
	f, err := OpenRLDS(ctx, src, cfg.Split, cfg.MaxRecordLen)
	if err != nil {
		return nil, err
	}
	return NewFormatLoader(ctx, f, cfg)
}

// NewFormatLoader starts the workers over the shards of f (cfg.Split and cfg.MaxRecordLen are the
// format's business).
func NewFormatLoader(ctx context.Context, f Format, cfg LoaderConfig) (*Loader, error) {
	cfg.fromExchange()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("data: loader: %w", err)
	}
	if err := f.CheckClip(cfg.Clip); err != nil {
		return nil, fmt.Errorf("data: loader %s: %w", f, err)
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	l := &Loader{parent: parent, cfg: cfg, format: f, shards: f.Shards(), cancel: cancel,
		batches: make(chan planned, max(cfg.Prefetch, 0)), done: make(chan struct{})}
	l.first.left = cfg.Workers
	outs := make([]chan *Sample, cfg.Workers)
	for w := range outs {
		outs[w] = make(chan *Sample, 2)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer close(outs[w])
			if err := l.worker(ctx, w, outs[w]); err != nil {
				l.fail(err)
			}
		}()
	}
	go func() {
		defer close(l.done)
		defer close(l.batches)
		l.assemble(ctx, outs)
	}()
	return l, nil
}

// Shards returns the shards of the split.
func (l *Loader) Shards() []Shard { return l.shards }

// Counts returns the running totals.
func (l *Loader) Counts() Counts { return l.counts.snapshot() }

// Next returns the next batch, io.EOF after the last epoch, or the error that stopped the loader.
func (l *Loader) Next(ctx context.Context) (*Batch, error) {
	if l.cfg.distributed() {
		return l.nextShared(ctx)
	}
	select {
	case p, ok := <-l.batches:
		if ok {
			return p.batch, nil
		}
		if err := l.stopped(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stopped waits for the stopped loader's goroutines and returns why it stopped: the error of a worker,
// the cancellation of NewLoader's context, or nil at the end of the data.
func (l *Loader) stopped() error {
	<-l.done
	l.wg.Wait()
	if l.err != nil {
		return l.err
	}
	return l.parent.Err()
}

// Close stops the workers and waits for them.
func (l *Loader) Close() {
	l.cancel()
	for range l.batches {
	}
	<-l.done
	l.wg.Wait()
}

func (l *Loader) fail(err error) {
	l.errOnce.Do(func() {
		l.err = err
		l.cancel()
	})
}

func (l *Loader) warn(err error) {
	if l.cfg.Warn != nil {
		l.cfg.Warn(err)
	}
}

// episodeRNG seeds the random choices of one episode from its identity only.
func episodeRNG(seed uint64, epoch, shard, record int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(epoch)<<42^uint64(shard)<<21^uint64(record)))
}

// worker decodes the clips of its shard parts, epoch after epoch.
func (l *Loader) worker(ctx context.Context, w int, out chan<- *Sample) error {
	pre, err := NewPreprocessor(l.cfg.Image)
	if err != nil {
		return err
	}
	dec := newClipDecoder(l, pre)
	for epoch := 0; l.cfg.Epochs == 0 || epoch < l.cfg.Epochs; epoch++ {
		produced := 0
		emit := func(samples []*Sample) error {
			for _, s := range samples {
				select {
				case out <- s:
					produced++
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}
		for _, unit := range AssignShards(l.shards, l.cfg.Seed, epoch, l.cfg.Rank, l.cfg.WorldSize, w, l.cfg.Workers) {
			keep := func(record int) bool {
				return record%unit.Parts == unit.Part && (l.cfg.Keep == nil || l.cfg.Keep(unit.Shard.Index, record))
			}
			err := l.format.EachEpisode(ctx, unit.Shard, keep, func(record int, ep ClipEpisode) error {
				l.counts.records.Add(1)
				if !l.cut(dec, unit.Shard, epoch, record, ep) || !dec.full() {
					return nil
				}
				samples, err := dec.decode(ctx)
				if err != nil {
					return err
				}
				return emit(samples)
			}, func(record int, err error) {
				l.counts.records.Add(1)
				l.counts.bad.Add(1)
				l.warn(&BadEpisodeError{Shard: unit.Shard.Name, Record: record, Err: err})
			}, func(corrupt *CorruptRecordError) {
				if unit.Part != 0 {
					return // another part of this shard counts and reports it
				}
				if errors.Is(corrupt, ErrTruncated) {
					l.counts.truncated.Add(1)
				} else {
					l.counts.corrupt.Add(1)
				}
				l.warn(corrupt)
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		// Clips cut but not yet decoded stay with their epoch.
		samples, err := dec.decode(ctx)
		if err == nil {
			err = emit(samples)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if epoch == 0 && l.cfg.Epochs == 0 && l.first.finish(ctx, produced, &l.counts.clips, !l.cfg.distributed()) {
			// The whole first epoch gave no clip: the data gives none at all, and an endless loader
			// would spin forever. A worker that is merely unlucky keeps going, since the next epoch
			// deals it other shards.
			return nil
		}
	}
	return nil
}

// BadEpisodeError is an episode the loader skipped: a malformed record or row, or a frame that does not
// decode or has another size than the dataset declares.
type BadEpisodeError struct {
	Shard  string
	Record int // index of the episode within its shard
	Err    error
}

func (e *BadEpisodeError) Error() string {
	// Err may come from this package and start with its prefix; say it once.
	return fmt.Sprintf("data: %s record %d: %s", e.Shard, e.Record, strings.TrimPrefix(e.Err.Error(), "data: "))
}

func (e *BadEpisodeError) Unwrap() error { return e.Err }

// cut cuts the clip of one episode and queues it on dec for decoding; false when the episode is skipped
// or malformed (counted, and warned about).
func (l *Loader) cut(dec *clipDecoder, shard Shard, epoch, record int, ep ClipEpisode) bool {
	l.counts.episodes.Add(1)
	clip, err := ep.MakeClip(l.cfg.Clip, l.cfg.Filter, episodeRNG(l.cfg.Seed, epoch, shard.Index, record))
	if r := SkipReasonOf(err); r != "" {
		l.counts.skip(r)
		return false
	}
	if err != nil {
		l.counts.bad.Add(1)
		l.warn(&BadEpisodeError{Shard: shard.Name, Record: record, Err: err})
		return false
	}
	T, H, W := l.cfg.Clip.Frames, l.cfg.Image.Height, l.cfg.Image.Width
	dec.add(&Sample{Shard: shard.Name, ShardIndex: shard.Index, Record: record, Epoch: epoch, Clip: clip,
		Pixels: make([]float32, 3*T*H*W)}, ep)
	return true
}

// clipDecoder holds a worker's cut clips until they are decoded: one at a time, or DecodeBatch at a
// time through the format's BatchDecoder.
type clipDecoder struct {
	l       *Loader
	pre     *Preprocessor
	batch   BatchDecoder // nil: one at a time
	size    int
	samples []*Sample
	jobs    []DecodeJob
}

func newClipDecoder(l *Loader, pre *Preprocessor) *clipDecoder {
	d := &clipDecoder{l: l, pre: pre, size: 1}
	if b, ok := l.format.(BatchDecoder); ok && b.DecodeBatch() > 1 {
		d.batch, d.size = b, b.DecodeBatch()
	}
	return d
}

func (d *clipDecoder) add(s *Sample, ep ClipEpisode) {
	d.samples = append(d.samples, s)
	d.jobs = append(d.jobs, DecodeJob{Episode: ep, Clip: s.Clip, Dst: s.Pixels})
}

func (d *clipDecoder) full() bool { return len(d.samples) >= d.size }

// decode decodes the queued clips and returns those that decoded, in the order they were cut; a clip
// that does not decode makes its episode bad (counted and warned about). Only the context's error is
// returned.
func (d *clipDecoder) decode(ctx context.Context) ([]*Sample, error) {
	if len(d.jobs) == 0 {
		return nil, nil
	}
	var errs []error
	if d.batch != nil {
		errs = d.batch.DecodeClips(ctx, d.pre, d.jobs)
	} else {
		errs = make([]error, len(d.jobs))
		for i, j := range d.jobs {
			errs[i] = j.Episode.DecodeClip(ctx, d.pre, j.Dst, j.Clip)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []*Sample
	for i, s := range d.samples {
		if errs[i] != nil {
			d.l.counts.bad.Add(1)
			d.l.warn(&BadEpisodeError{Shard: s.Shard, Record: s.Record, Err: errs[i]})
			continue
		}
		d.l.counts.clips.Add(1)
		if d.l.cfg.distributed() && s.Clip.Frames != nil {
			// Keep the clip's JPEGs, not the whole record: another rank may take the clip (exchange.go).
			s.Clip.Frames = compactFrames(s.Clip.Frames)
		}
		out = append(out, s)
	}
	clear(d.samples)
	clear(d.jobs)
	d.samples, d.jobs = d.samples[:0], d.jobs[:0]
	return out, nil
}

// compactFrames copies byte slices into one allocation of their total size.
func compactFrames(frames [][]byte) [][]byte {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	buf := make([]byte, 0, n)
	out := make([][]byte, len(frames))
	for i, f := range frames {
		buf = append(buf, f...)
		out[i] = buf[len(buf)-len(f):]
	}
	return out
}

// firstEpoch decides, the same way whatever the timing, whether the first epoch of an endless loader
// gave no clip at all: a worker that found none in its share waits until another worker finds one or
// every worker has finished the epoch. (Across the ranks of a distributed loader, Next decides.)
type firstEpoch struct {
	mu   sync.Mutex
	left int // workers still in the first epoch
}

func (f *firstEpoch) remaining() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.left
}

// finish records that a worker finished the first epoch with produced clips and, when wait, reports
// whether the whole epoch, over every worker, gave none.
func (f *firstEpoch) finish(ctx context.Context, produced int, clips *atomic.Int64, wait bool) bool {
	f.mu.Lock()
	f.left--
	f.mu.Unlock()
	for wait && produced == 0 && clips.Load() == 0 {
		f.mu.Lock()
		left := f.left
		f.mu.Unlock()
		if left == 0 {
			return clips.Load() == 0
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// planned is one batch on its way to Next: stacked, or, for a rank of a distributed loader, the slots
// of the global batch, which Next exchanges with the other ranks.
type planned struct {
	batch *Batch
	slots []slot
}

// slot is one position of a global batch: the rank whose worker drew its sample, and the sample when
// that is this rank.
type slot struct {
	owner int
	s     *Sample
}

// assemble merges worker outputs round-robin, shuffles and batches them. A distributed loader merges
// the global workers of every rank (global worker g = rank·Workers + w): the order of arrivals, the
// shuffle's draws and the batch boundaries depend only on the configuration, so every rank computes the
// same global batches, holding the samples of its own workers.
func (l *Loader) assemble(ctx context.Context, outs []chan *Sample) {
	rng := rand.New(rand.NewPCG(l.cfg.Seed, 0x5eed))
	size := 1
	if l.cfg.distributed() {
		size = l.cfg.WorldSize
	}
	var buf, pending []slot
	emit := func(s slot) bool {
		pending = append(pending, s)
		if len(pending) < size*l.cfg.BatchSize {
			return true
		}
		p := planned{slots: pending}
		if size == 1 {
			p = planned{batch: l.stack(samplesOf(pending))}
		}
		pending = nil
		select {
		case l.batches <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}
	push := func(s slot) bool {
		if l.cfg.ShuffleBuffer <= 1 {
			return emit(s)
		}
		if len(buf) < l.cfg.ShuffleBuffer {
			buf = append(buf, s)
			return true
		}
		j := rng.IntN(len(buf))
		s, buf[j] = buf[j], s
		return emit(s)
	}
	if size > 1 {
		G := size * len(outs)
		for k := 0; ; k++ {
			s := slot{owner: k % G / len(outs)}
			if s.owner == l.cfg.Rank {
				var ok bool
				if s.s, ok = <-outs[k%G%len(outs)]; !ok {
					if ctx.Err() == nil {
						l.fail(fmt.Errorf("data: rank %d of %d: worker %d stopped", l.cfg.Rank, size, k%G%len(outs)))
					}
					return
				}
			}
			if !push(s) {
				return
			}
		}
	}
	active := append([]chan *Sample(nil), outs...)
	for i := 0; len(active) > 0; {
		s, ok := <-active[i]
		if !ok {
			active = append(active[:i], active[i+1:]...)
			if len(active) > 0 {
				i %= len(active)
			}
			continue
		}
		i = (i + 1) % len(active)
		if !push(slot{s: s}) {
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	rng.Shuffle(len(buf), func(i, j int) { buf[i], buf[j] = buf[j], buf[i] })
	for _, s := range buf {
		if !emit(s) {
			return
		}
	}
	if len(pending) > 0 && !l.cfg.DropLast {
		b := l.stack(samplesOf(pending))
		select {
		case l.batches <- planned{batch: b}:
		case <-ctx.Done():
		}
	}
}

func samplesOf(slots []slot) []*Sample {
	out := make([]*Sample, len(slots))
	for i, s := range slots {
		out[i] = s.s
	}
	return out
}

// stack copies samples into one Batch.
func (l *Loader) stack(samples []*Sample) *Batch {
	B, T, H, W := len(samples), l.cfg.Clip.Frames, l.cfg.Image.Height, l.cfg.Image.Width
	S, A := l.format.Dims()
	b := &Batch{B: B, T: T, H: H, W: W, S: S, A: A,
		Frames:     make([]float32, B*3*T*H*W),
		States:     make([]float32, B*T*S),
		Actions:    make([]float32, B*(T-1)*A),
		Extrinsics: make([]float32, B*T*6),
		Samples:    samples,
	}
	for i, s := range samples {
		copy(b.Frames[i*3*T*H*W:(i+1)*3*T*H*W], s.Pixels)
		s.Pixels = nil
		for t, st := range s.Clip.States {
			if len(st) != S {
				panic(fmt.Sprintf("data: %s gave a %d-D state, want %d", l.format, len(st), S))
			}
			for k, v := range st {
				b.States[(i*T+t)*S+k] = float32(v)
			}
		}
		for t, a := range s.Clip.Actions {
			if len(a) != A {
				panic(fmt.Sprintf("data: %s gave a %d-D action, want %d", l.format, len(a), A))
			}
			for k, v := range a {
				b.Actions[(i*(T-1)+t)*A+k] = float32(v)
			}
		}
		for t, e := range s.Clip.Extrinsics {
			for k, v := range e {
				b.Extrinsics[(i*T+t)*6+k] = float32(v)
			}
		}
	}
	return b
}

// EachRecord reads the records of one shard in order and calls fn with each record's index within the
// shard and its data. A corrupt record is skipped but keeps its index (so indices follow the file);
// onCorrupt (optional) sees each *CorruptRecordError, including the final one of a truncated shard.
func EachRecord(ctx context.Context, src Source, shard Shard, maxLen int64, fn func(record int, data []byte) error,
	onCorrupt func(*CorruptRecordError)) (RecordStats, error) {
	rc, err := src.Open(ctx, shard.Name)
	if err != nil {
		return RecordStats{}, err
	}
	defer rc.Close()
	rr := NewRecordReader(rc, fmt.Sprintf("%s/%s", src, shard.Name), maxLen)
	for record := 0; ; record++ {
		if err := ctx.Err(); err != nil {
			return rr.Stats(), err
		}
		data, err := rr.Next()
		if err == io.EOF {
			return rr.Stats(), nil
		}
		var corrupt *CorruptRecordError
		if errors.As(err, &corrupt) {
			if onCorrupt != nil {
				onCorrupt(corrupt)
			}
			continue
		}
		if err != nil {
			return rr.Stats(), err
		}
		if err := fn(record, data); err != nil {
			return rr.Stats(), err
		}
	}
}
