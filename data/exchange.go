package data

// A loader shared by the ranks of a data-parallel job (LoaderConfig.Exchange). The job's batches must be
// exactly those of one process with Size·BatchSize clips: the same clips in the same order, cut and
// augmented the same way, after the same filtering. Each rank reads and decodes only its own share of
// the episodes, and yet every rank knows the global order:
//
//   - the Size·Workers global workers read the shard parts AssignShards deals them; each clip's random
//     choices are seeded by its episode (seed, epoch, shard, record), so a clip does not depend on which
//     rank decodes it;
//   - the merge takes one clip from each global worker in turn, so arrival k comes from worker k mod G
//     whatever the clips are: which arrivals are local is known in advance;
//   - the shuffle buffer's draws depend only on the seed, so every rank replays them over arrival
//     indices and computes the same global batches, holding the decoded clips of its own workers;
//   - for each global batch, Next exchanges the clips (one all-to-all): rank r keeps slots
//     [r·BatchSize, (r+1)·BatchSize).
//
// A clip travels as its T JPEG frames (about 20 KB each in DROID), not as its decoded pixels (3·T·H·W
// float32, 6.3 MB at T=8, 256²: 8 ranks of a node would push some 300 MB through its network card per
// step). The rank that read the episode has decoded it, so a clip that fails to decode is dropped on
// every rank alike; the receiver decodes the same bytes with the same code, so its pixels are bit for
// bit the producer's. Next exchanges the batch after the one it returns, so that its clips decode
// while the caller computes.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
)

// Exchanger connects the ranks of a data-parallel job (dist.World implements it).
type Exchanger interface {
	Rank() int
	Size() int
	// Exchange sends send[r] to rank r and returns what each rank sent to this one; a collective that
	// every rank calls in the same order.
	Exchange(send [][]byte) ([][]byte, error)
}

// nextShared is Next for a rank of a distributed loader. The ranks first agree, with small status
// exchanges every few milliseconds, that each has its share of the next global batch ready, then
// exchange the clips. The status also carries what a rank alone cannot know: that the whole first
// epoch, over every rank, gave no clip (io.EOF everywhere), or that another rank's loader failed.
// Cancelling ctx ends the wait on this rank only: the job must then be aborted.
func (l *Loader) nextShared(ctx context.Context) (*Batch, error) {
	if l.ahead == nil {
		l.ahead = l.fetchShared(ctx)
	}
	cur := l.ahead
	select {
	case <-cur.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if cur.err != nil {
		return nil, cur.err // and again on every later call
	}
	l.ahead = l.fetchShared(ctx)
	return cur.batch, nil
}

// sharedBatch is one rank's batch of a distributed loader: exchanged, its received clips decoding.
type sharedBatch struct {
	done  chan struct{} // closed when batch or err is set
	batch *Batch
	err   error
}

// fetchShared runs the collectives of the next global batch (agree, exchange) and decodes the clips
// received from other ranks in the background.
func (l *Loader) fetchShared(ctx context.Context) *sharedBatch {
	sb := &sharedBatch{done: make(chan struct{})}
	slots, err := l.agree(ctx)
	if err == nil {
		var mine []*Sample
		if mine, err = l.exchange(slots); err == nil {
			go func() {
				defer close(sb.done)
				if sb.err = l.decodeReceived(mine); sb.err == nil {
					sb.batch = l.stack(mine)
				}
			}()
			return sb
		}
	}
	sb.err = err
	close(sb.done)
	return sb
}

// agree waits, with the other ranks, until every rank holds its share of the next global batch and
// returns that batch's slots.
func (l *Loader) agree(ctx context.Context) ([]slot, error) {
	const (
		ready = iota
		stopped
		firstDone // workers past the first epoch
		clips
		fields
	)
	for poll := time.Duration(0); ; poll = min(2*poll+time.Millisecond, 20*time.Millisecond) {
		if poll > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(poll):
			}
		}
		var st [fields]uint64
		if l.held == nil {
			select {
			case p, ok := <-l.batches:
				if ok {
					l.held = &p
				} else {
					st[stopped] = 1
				}
			default:
			}
		}
		if l.held != nil {
			st[ready] = 1
		}
		st[firstDone] = uint64(l.cfg.Workers - l.first.remaining())
		st[clips] = uint64(l.counts.clips.Load())
		msg := make([]byte, 0, 8*fields)
		for _, v := range st {
			msg = binary.LittleEndian.AppendUint64(msg, v)
		}
		send := make([][]byte, l.cfg.WorldSize)
		for r := range send {
			send[r] = msg
		}
		recv, err := l.cfg.Exchange.Exchange(send)
		if err != nil {
			return nil, fmt.Errorf("data: rank %d: exchange loader status: %w", l.cfg.Rank, err)
		}
		var sum [fields]uint64
		var failed []int
		for r, m := range recv {
			if len(m) != 8*fields {
				return nil, fmt.Errorf("data: rank %d: loader status of rank %d is %d bytes, want %d", l.cfg.Rank, r, len(m), 8*fields)
			}
			for i := range sum {
				sum[i] += binary.LittleEndian.Uint64(m[8*i:])
			}
			if binary.LittleEndian.Uint64(m[8*stopped:]) != 0 {
				failed = append(failed, r)
			}
		}
		switch {
		case st[stopped] != 0:
			if err := l.stopped(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("data: rank %d: loader stopped", l.cfg.Rank)
		case len(failed) > 0:
			return nil, fmt.Errorf("data: rank %d: the loader of rank %v stopped (its own message says why)", l.cfg.Rank, failed)
		case sum[firstDone] == uint64(l.cfg.WorldSize*l.cfg.Workers) && sum[clips] == 0:
			return nil, io.EOF
		case sum[ready] == uint64(l.cfg.WorldSize):
			p := l.held
			l.held = nil
			return p.slots, nil
		}
	}
}

// exchange turns a global batch's slots into this rank's samples: samples drawn here for other ranks are
// sent to them, samples drawn elsewhere for this rank are received (without pixels), in slot order.
func (l *Loader) exchange(slots []slot) ([]*Sample, error) {
	B, rank := l.cfg.BatchSize, l.cfg.Rank
	S, A := l.format.Dims()
	send := make([][]byte, l.cfg.WorldSize)
	for j, s := range slots {
		if dst := j / B; s.owner == rank && dst != rank {
			send[dst] = appendSample(send[dst], s.s)
		}
	}
	recv, err := l.cfg.Exchange.Exchange(send)
	if err != nil {
		return nil, fmt.Errorf("data: rank %d: exchange a batch: %w", rank, err)
	}
	mine := make([]*Sample, B)
	for j := range mine {
		s := slots[rank*B+j]
		if s.owner == rank {
			mine[j] = s.s
			continue
		}
		if mine[j], recv[s.owner], err = readSample(recv[s.owner], l.cfg.Clip.Frames, S, A, l.cfg.Image.Height, l.cfg.Image.Width); err != nil {
			return nil, fmt.Errorf("data: rank %d: clip %d of the batch from rank %d: %w", rank, j, s.owner, err)
		}
	}
	return mine, nil
}

// decodeReceived decodes the pixels of the samples that came as encoded frames, on up to Workers
// goroutines, as the formats' DecodeClip does for encoded frames (Preprocessor.Clip). The rank that sent
// a clip decoded the same bytes, so an error here is a fault.
func (l *Loader) decodeReceived(samples []*Sample) error {
	work := make(chan *Sample, len(samples))
	for _, s := range samples {
		if s.Pixels == nil {
			work <- s
		}
	}
	close(work)
	errs := make([]error, min(l.cfg.Workers, len(work)))
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pre, err := NewPreprocessor(l.cfg.Image)
			for s := range work {
				if err != nil {
					break
				}
				s.Pixels = make([]float32, 3*len(s.Clip.Frames)*l.cfg.Image.Height*l.cfg.Image.Width)
				if err = pre.Clip(s.Pixels, s.Clip.Frames); err != nil {
					err = fmt.Errorf("data: rank %d: decode a clip of %s record %d received from another rank: %w", l.cfg.Rank, s.Shard, s.Record, err)
				}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// appendSample writes s in the exchange's format, little-endian: a header of uint32s (shard index,
// record, epoch, start, T, S, A, whether there are timestamps, whether frames follow), the T frame
// indices, the shard and camera names, the clip's states, actions, extrinsics and timestamps (float64, as
// the format gave them), then its T encoded frames (length, bytes) or, for a format without encoded
// frames (video), its decoded pixels (float32).
func appendSample(b []byte, s *Sample) []byte {
	c := s.Clip
	T := len(c.Indices)
	S, A := 0, 0
	if len(c.States) > 0 {
		S = len(c.States[0])
	}
	if len(c.Actions) > 0 {
		A = len(c.Actions[0])
	}
	hasTimes, hasFrames := 0, 0
	if c.Times != nil {
		hasTimes = 1
	}
	if len(c.Frames) == T {
		hasFrames = 1
	}
	for _, v := range []int{s.ShardIndex, s.Record, s.Epoch, c.Start, T, S, A, hasTimes, hasFrames} {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	for _, v := range c.Indices {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	for _, str := range []string{s.Shard, c.Camera} {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(str)))
		b = append(b, str...)
	}
	f64 := func(v []float64) {
		for _, x := range v {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		}
	}
	for _, st := range c.States {
		f64(st)
	}
	for _, a := range c.Actions {
		f64(a)
	}
	for _, e := range c.Extrinsics {
		f64(e[:])
	}
	f64(c.Times)
	if hasFrames == 0 {
		if len(s.Pixels) == 0 {
			panic(fmt.Sprintf("data: exchange %s record %d: a clip with neither encoded frames nor pixels", s.Shard, s.Record))
		}
		b, _ = binary.Append(b, binary.LittleEndian, s.Pixels)
		return b
	}
	for _, f := range c.Frames {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

var errShortSample = errors.New("message ends inside a clip")

// readSample reads one sample written by appendSample, of T frames of pixels [3, T, H, W] and states
// and actions of widths S and A, and returns the rest of b. A sample sent with its encoded frames has
// Clip.Frames and no Pixels yet.
func readSample(b []byte, T, S, A, H, W int) (*Sample, []byte, error) {
	u32 := func() (int, error) {
		if len(b) < 4 {
			return 0, errShortSample
		}
		v := binary.LittleEndian.Uint32(b)
		b = b[4:]
		return int(v), nil
	}
	var hdr [9]int
	for i := range hdr {
		v, err := u32()
		if err != nil {
			return nil, nil, err
		}
		hdr[i] = v
	}
	if hdr[4] != T || hdr[5] != S || hdr[6] != A {
		return nil, nil, fmt.Errorf("clip of %d frames, states of %d and actions of %d, want %d, %d and %d", hdr[4], hdr[5], hdr[6], T, S, A)
	}
	c := &Clip{Start: hdr[3], Indices: make([]int, T), States: make([][]float64, T), Actions: make([][]float64, T-1),
		Extrinsics: make([][6]float64, T)}
	s := &Sample{ShardIndex: hdr[0], Record: hdr[1], Epoch: hdr[2], Clip: c}
	for i := range c.Indices {
		v, err := u32()
		if err != nil {
			return nil, nil, err
		}
		c.Indices[i] = v
	}
	for _, dst := range []*string{&s.Shard, &c.Camera} {
		n, err := u32()
		if err != nil {
			return nil, nil, err
		}
		if len(b) < n {
			return nil, nil, errShortSample
		}
		*dst, b = string(b[:n]), b[n:]
	}
	f64 := func(v []float64) error {
		if len(b) < 8*len(v) {
			return errShortSample
		}
		for i := range v {
			v[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
		b = b[8*len(v):]
		return nil
	}
	rows := make([]float64, T*S+(T-1)*A)
	if err := f64(rows); err != nil {
		return nil, nil, err
	}
	for t := range c.States {
		c.States[t], rows = rows[:S:S], rows[S:]
	}
	for t := range c.Actions {
		c.Actions[t], rows = rows[:A:A], rows[A:]
	}
	for t := range c.Extrinsics {
		if err := f64(c.Extrinsics[t][:]); err != nil {
			return nil, nil, err
		}
	}
	if hdr[7] != 0 {
		c.Times = make([]float64, T)
		if err := f64(c.Times); err != nil {
			return nil, nil, err
		}
	}
	if hdr[8] == 0 {
		s.Pixels = make([]float32, 3*T*H*W)
		n, err := binary.Decode(b, binary.LittleEndian, s.Pixels)
		if err != nil {
			return nil, nil, errShortSample
		}
		return s, b[n:], nil
	}
	c.Frames = make([][]byte, T)
	for i := range c.Frames {
		n, err := u32()
		if err != nil {
			return nil, nil, err
		}
		if len(b) < n {
			return nil, nil, errShortSample
		}
		c.Frames[i], b = b[:n:n], b[n:]
	}
	return s, b, nil
}
