package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// heldOut returns the validation split of data.val_episodes: the first n episodes in shard order (the
// global index counts the records of earlier shards, from dataset_info.json's shardLengths; where those
// are unknown only shard 0 holds validation episodes).
func heldOut(shards []data.Shard, n int) func(shard, record int) bool {
	offset := map[int]int64{}
	var acc int64
	known := true
	for _, s := range shards {
		offset[s.Index] = acc
		if s.Episodes < 0 {
			known = false
		}
		acc += max(s.Episodes, 0)
	}
	return func(shard, record int) bool {
		if !known {
			return shard == 0 && record < n
		}
		return offset[shard]+int64(record) < int64(n)
	}
}

// valRunner evaluates the objective (no backward) on held-out episodes.
type valRunner struct {
	src     data.Format
	cfg     data.LoaderConfig
	batches int
	s       *vk.Stream
}

func (t *trainer) setupValidation(ctx context.Context, src data.Format, shards []data.Shard) error {
	c := t.cfg
	if c.Data.ValEpisodes == 0 {
		return nil
	}
	keep := heldOut(shards, c.Data.ValEpisodes)
	lc := t.loaderConfig()
	lc.Keep = keep
	lc.ShuffleBuffer = 0
	// Every rank reads the held-out episodes' global batches and evaluates its share of each (few clips:
	// no exchange); the sums are reduced (validate).
	lc.Exchange, lc.BatchSize = nil, c.Data.BatchSize*t.ranks()
	// One worker: the held-out episodes may all sit in one shard, and the loader merges its workers in
	// lock-step, so a worker with nothing to read would end the stream.
	lc.Workers = 1
	lc.Seed = uint64(c.Data.Seed) + 1
	// Each pass over the held-out episodes draws one clip per episode; enough passes fill the batches.
	batches := max(1, (c.Data.ValEpisodes+lc.BatchSize-1)/lc.BatchSize)
	v := &valRunner{src: src, cfg: lc, batches: batches}
	var err error
	if v.s, err = t.d.NewStream(false); err != nil {
		return err
	}
	t.ep.Forward(v.s)
	vk.CopyBlocks(v.s, t.graph.Features, t.ep.Out, vk.CopyArgs{Count: 1, Rows: 1, Cols: t.ep.Out.Numel()})
	t.graph.Forward(v.s)
	if err := v.s.Err(); err != nil {
		return err
	}
	t.val = v
	return nil
}

// validate runs the held-out batches (the same clips every time: a fresh loader with a fixed seed) and
// returns the mean losses and the error of each rollout step.
func (t *trainer) validate(ctx context.Context) (ValMetrics, error) {
	v, g := t.val, t.graph
	l, err := data.NewFormatLoader(ctx, v.src, v.cfg)
	if err != nil {
		return ValMetrics{}, err
	}
	defer l.Close()
	m := ValMetrics{Step: t.step, RolloutErr: make([]float64, g.AutoSteps)}
	F := g.hw * g.e
	for i := 0; i < v.batches; i++ {
		b, err := l.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return ValMetrics{}, fmt.Errorf("train: validation: %w", err)
		}
		if n := t.ranks(); n > 1 {
			if b.B < n*g.B {
				return ValMetrics{}, fmt.Errorf("train: validation: batch of %d clips, want %d", b.B, n*g.B)
			}
			b = sliceBatch(b, t.rank()*g.B, g.B)
		}
		if err := t.upload(b); err != nil {
			return ValMetrics{}, err
		}
		if err := v.s.Run(); err != nil {
			return ValMetrics{}, err
		}
		ltf, err := t.d.Download(g.LossTF)
		if err != nil {
			return ValMetrics{}, err
		}
		lar, err := t.d.Download(g.LossAR)
		if err != nil {
			return ValMetrics{}, err
		}
		zar, err := t.d.Download(g.ZAR)
		if err != nil {
			return ValMetrics{}, err
		}
		tgt, err := t.d.Download(g.tgtAR)
		if err != nil {
			return ValMetrics{}, err
		}
		for bi := 0; bi < g.B; bi++ {
			for k := 0; k < g.AutoSteps; k++ {
				off := (bi*g.AutoSteps + k) * F
				var sum float64
				for j := 0; j < F; j++ {
					sum += math.Abs(float64(zar[off+j] - tgt[off+j]))
				}
				m.RolloutErr[k] += sum / float64(F*g.B)
			}
		}
		m.LossTF += float64(ltf[0])
		m.LossRollout += float64(lar[0])
		m.Clips += b.B
	}
	if t.comm != nil {
		// Each rank's sums are of means over its g.B clips of each global batch: sum them over the
		// ranks and divide by their number, as the training losses.
		sums := append([]float64{m.LossTF, m.LossRollout, float64(m.Clips)}, m.RolloutErr...)
		if err := t.comm.AllReduceF64(sums); err != nil {
			return ValMetrics{}, fmt.Errorf("train: validation: reduce: %w", err)
		}
		N := float64(t.ranks())
		m.LossTF, m.LossRollout, m.Clips = sums[0]/N, sums[1]/N, int(sums[2])
		for k := range m.RolloutErr {
			m.RolloutErr[k] = sums[3+k] / N
		}
	}
	n := float64(m.Clips / (g.B * t.ranks()))
	if n == 0 {
		return ValMetrics{}, fmt.Errorf("train: validation: the %d held-out episodes gave no clip of %d frames", t.cfg.Data.ValEpisodes, t.cfg.Data.Frames)
	}
	m.LossTF /= n
	m.LossRollout /= n
	for k := range m.RolloutErr {
		m.RolloutErr[k] /= n
	}
	m.Loss = m.LossTF + m.LossRollout
	return m, nil
}
