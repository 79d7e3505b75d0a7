package train

// Data-parallel training: Train as one rank of a job of N processes (Options.Comm, an MPI world from
// package dist), one GPU each. The job computes what one process with N times the batch would:
//
//   - data: data.batch_size (and data.workers) are per rank; the loader is shared (data.Exchanger), so
//     rank r's micro-batch is clips [r·b, (r+1)·b) of the global batch one process with N·b clips draws,
//     and its adapter-dropout masks are those rows' masks in the global batch (Predictor.SetBatchPart);
//     a feature cache is read the same way (cacheSource); validation batches are split and reduced;
//   - gradients: after the micro-batches of a step, one fp32 sum all-reduce of a flat host buffer with
//     every adapter gradient, then each rank's two losses and its stop request (dataParallel.reduce).
//     Each rank's loss is its mean over b clips, so the sums, divided by N (folded into AdamW's
//     gradient scale), are the global batch's mean and gradient. The gradient norm, clipping, the
//     non-finite check (any rank's inf or NaN survives the sum) and the loss scaler then see identical
//     gradients on every rank, which all take the same step;
//   - files: rank 0 alone writes metrics, TensorBoard, checkpoints, adapters and syncs to GCS; every rank
//     resumes from the checkpoint rank 0 reads, sent to all (no shared filesystem needed);
//   - stopping: SIGINT/SIGTERM on any rank is a stop request carried by the next all-reduce, so every
//     rank finishes the same step and rank 0 writes one checkpoint. Collectives must never be left
//     halfway, so a rank waits for data and validates without its signal context;
//   - failures: a rank that fails returns its error; the caller (cmd/vjepa-vk) aborts the job with
//     MPI_Abort. Mismatched configs are found at start: every rank compares its resolved config with
//     rank 0's.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/dist"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// dataParallel is a trainer's link to the other ranks: the gradient all-reduce and its buffers.
type dataParallel struct {
	comm         dist.Comm
	d            *vk.Device
	flat         vk.Tensor  // [n] f32 on the device: every adapter gradient, in optimizer order
	pack, unpack *vk.Stream // gradients → flat, flat → gradients
	host         []float32  // [n + reduceExtra]: the gradients, then lossTF, lossRollout, stop requests
	n            int
	stop         bool          // a rank asked to stop: every rank stops after this step
	mpiTime      time.Duration // the last step's all-reduce call alone
	syncTime     time.Duration // the last step's whole exchange: pack, download, all-reduce, upload, unpack
}

const reduceExtra = 3

// newDataParallel lays out the flat gradient buffer of opt's parameters and records the two copies.
func newDataParallel(comm dist.Comm, d *vk.Device, opt *optimizer) (*dataParallel, error) {
	dp := &dataParallel{comm: comm, d: d}
	for _, pr := range opt.params {
		dp.n += pr.g.Numel()
	}
	var err error
	if dp.flat, err = d.NewTensor(vk.F32, dp.n); err != nil {
		return nil, fmt.Errorf("train: allocate the all-reduce buffer (%d gradients): %w", dp.n, err)
	}
	if dp.pack, err = d.NewStream(false); err == nil {
		dp.unpack, err = d.NewStream(false)
	}
	if err != nil {
		dp.free()
		return nil, err
	}
	off := 0
	for _, pr := range opt.params {
		n := pr.g.Numel()
		vk.CopyBlocks(dp.pack, dp.flat, pr.g, vk.CopyArgs{Count: 1, Rows: 1, Cols: n, DstOffset: off})
		vk.CopyBlocks(dp.unpack, pr.g, dp.flat, vk.CopyArgs{Count: 1, Rows: 1, Cols: n, SrcOffset: off})
		off += n
	}
	for _, s := range []*vk.Stream{dp.pack, dp.unpack} {
		if err := s.Err(); err != nil {
			dp.free()
			return nil, err
		}
	}
	// MPI reads and writes this buffer in place: C-heap memory when the world offers it.
	if b, ok := comm.(interface{ F32Buffer(int) []float32 }); ok {
		dp.host = b.F32Buffer(dp.n + reduceExtra)
	} else {
		dp.host = make([]float32, dp.n+reduceExtra)
	}
	return dp, nil
}

func (dp *dataParallel) free() {
	for _, s := range []*vk.Stream{dp.pack, dp.unpack} {
		if s != nil {
			s.Destroy()
		}
	}
	if dp.flat.Valid() {
		dp.d.Free(dp.flat)
	}
}

// reduce replaces every adapter gradient with its sum over the ranks and returns the sums of the ranks'
// losses; it sets dp.stop when any rank asked to stop. One all-reduce, whatever the gradient accumulation.
func (dp *dataParallel) reduce(lossTF, lossRollout float64, stop bool) (float64, float64, error) {
	start := time.Now()
	if err := dp.pack.Run(); err != nil {
		return 0, 0, err
	}
	if err := dp.d.ReadF32(dp.flat, dp.host[:dp.n]); err != nil {
		return 0, 0, err
	}
	x := dp.host[dp.n:]
	x[0], x[1], x[2] = float32(lossTF), float32(lossRollout), 0
	if stop {
		x[2] = 1
	}
	t := time.Now()
	if err := dp.comm.AllReduceF32(dp.host); err != nil {
		return 0, 0, fmt.Errorf("train: all-reduce %d gradients: %w", dp.n, err)
	}
	dp.mpiTime = time.Since(t)
	if err := dp.d.WriteF32(dp.flat, dp.host[:dp.n]); err != nil {
		return 0, 0, err
	}
	if err := dp.unpack.Run(); err != nil {
		return 0, 0, err
	}
	dp.stop = x[2] > 0
	dp.syncTime = time.Since(start)
	return float64(x[0]), float64(x[1]), nil
}

// collective returns the context for work that every rank must finish together (waiting for data,
// validating): without the signal's cancellation, which reaches the ranks at different moments and is
// acted on at the next all-reduce instead. A world of one keeps ctx.
func (t *trainer) collective(ctx context.Context) context.Context {
	if t.comm == nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// stopRequested reports whether the run must stop before its next step: SIGINT/SIGTERM (ctx) in a world
// of one; a stop request any rank sent with the last all-reduce in a job.
func (t *trainer) stopRequested(ctx context.Context) bool {
	if t.dp == nil {
		return ctx.Err() != nil
	}
	return t.dp.stop
}

// rank and ranks are this process's place in the job (0 of 1 alone).
func (t *trainer) rank() int {
	if t.comm == nil {
		return 0
	}
	return t.comm.Rank()
}

func (t *trainer) ranks() int {
	if t.comm == nil {
		return 1
	}
	return t.comm.Size()
}

// commName names the job's transport: the MPI library when the world says.
func (t *trainer) commName() string {
	if l, ok := t.comm.(interface{ Library() string }); ok && l.Library() != "" {
		return l.Library()
	}
	return "the job's communicator"
}

// root reports whether this process writes the run's files (rank 0).
func (t *trainer) root() bool { return t.rank() == 0 }

// warn reports a data problem (once each, data.Warnings): on rank 0 as a progress line, on the others
// on stderr (their progress is off), naming the rank, whose shards differ.
func (t *trainer) warn(msg string) {
	if t.root() {
		t.progress.Printf("warning: %s", msg)
		return
	}
	fmt.Fprintf(os.Stderr, "vjepa-vk: rank %d: warning: %s\n", t.rank(), msg)
}

// checkSameConfig fails, on each rank whose resolved config (or binary) differs from rank 0's, with the
// first line that differs: ranks started with different files or flags would otherwise train
// different models that only look like one.
func checkSameConfig(comm dist.Comm, cfg *Config) error {
	var b strings.Builder
	if err := Print(&b, cfg); err != nil {
		return err
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" || s.Key == "vcs.modified" {
				fmt.Fprintf(&b, "# binary %s=%s\n", s.Key, s.Value)
			}
		}
	}
	mine := b.String()
	root, err := comm.Broadcast([]byte(mine), 0)
	if err != nil {
		return fmt.Errorf("train: compare configs: %w", err)
	}
	if string(root) == mine {
		return nil
	}
	a, r := strings.Split(mine, "\n"), strings.Split(string(root), "\n")
	i := 0
	for i < len(a) && i < len(r) && a[i] == r[i] {
		i++
	}
	line := func(l []string) string {
		if i < len(l) {
			return strings.TrimSpace(l[i])
		}
		return "(end)"
	}
	return fmt.Errorf("train: rank %d: config %s differs from rank 0's (sha256 %x, rank 0 %x): line %d of the resolved config is %q here, %q on rank 0",
		comm.Rank(), cfg.Source(), sha256.Sum256([]byte(mine)), sha256.Sum256(root), i+1, line(a), line(r))
}

// checkSameState fails, on a rank whose trained state (adapters, optimizer moments, step and data
// position) differs from rank 0's, before rank 0 checkpoints it. The ranks apply the same update to the
// same all-reduced gradients, so they agree unless the MPI library's sums differ between ranks (MPI
// recommends, but does not require, identical results): better a clear error than a silent drift.
func (t *trainer) checkSameState() error {
	if t.comm == nil {
		return nil
	}
	h := sha256.New()
	fmt.Fprintf(h, "step %d batches %d adam %d scale %v\n", t.step, t.batches, t.opt.steps, *t.scaler)
	for _, st := range t.opt.state() {
		raw, err := t.d.ReadBytes(st.t)
		if err != nil {
			return err
		}
		h.Write(raw)
	}
	mine := h.Sum(nil)
	root, err := t.comm.Broadcast(mine, 0)
	if err != nil {
		return fmt.Errorf("train: compare ranks' state: %w", err)
	}
	if !bytes.Equal(root, mine) {
		return fmt.Errorf("train: rank %d: at step %d the adapters and optimizer state differ from rank 0's (sha256 %x, rank 0 %x): "+
			"the ranks no longer train one model", t.rank(), t.step, mine, root)
	}
	return nil
}

// prepareRunDirs is prepareRunDir for the job: rank 0 alone looks at and cleans the run folder, finds
// the checkpoint to resume from (restoring the folder from GCS if asked) and sends it to every rank, so
// that all resume from the same checkpoint, also without a shared filesystem; rank 0's refusal (an
// earlier run in the folder, a corrupt checkpoint) reaches every rank.
func (t *trainer) prepareRunDirs(ctx context.Context) error {
	if t.comm == nil {
		return t.prepareRunDir(ctx)
	}
	const (
		fresh = iota
		resume
		failed
	)
	var msg []byte
	var rootErr error
	if t.root() {
		rootErr = t.prepareRunDir(ctx)
		switch {
		case rootErr != nil:
			msg = append([]byte{failed}, rootErr.Error()...)
		case t.resumeCk == nil:
			msg = []byte{fresh}
		default:
			var ck bytes.Buffer
			if rootErr = WriteCheckpoint(&ck, t.resumeCk); rootErr != nil {
				msg = append([]byte{failed}, rootErr.Error()...)
				break
			}
			msg = binary.LittleEndian.AppendUint32([]byte{resume}, uint32(len(t.resumePath)))
			msg = append(append(msg, t.resumePath...), ck.Bytes()...)
		}
	}
	msg, err := t.comm.Broadcast(msg, 0)
	switch {
	case rootErr != nil:
		return rootErr
	case err != nil:
		return fmt.Errorf("train: resume: send the checkpoint: %w", err)
	case len(msg) == 0:
		return errors.New("train: resume: empty message from rank 0")
	case t.root() || msg[0] == fresh:
		return nil
	case msg[0] == failed:
		return fmt.Errorf("train: rank 0: %s", msg[1:])
	}
	n := int(binary.LittleEndian.Uint32(msg[1:]))
	t.resumePath = string(msg[5 : 5+n])
	t.resumeCk, err = parseCheckpoint(t.resumePath, msg[5+n:])
	return err
}

// sliceBatch returns clips [lo, lo+n) of b (views, not copies).
func sliceBatch(b *data.Batch, lo, n int) *data.Batch {
	T, HW := b.T, b.H*b.W
	return &data.Batch{B: n, T: T, H: b.H, W: b.W,
		Frames:     b.Frames[lo*3*T*HW : (lo+n)*3*T*HW],
		States:     b.States[lo*T*7 : (lo+n)*T*7],
		Actions:    b.Actions[lo*(T-1)*7 : (lo+n)*(T-1)*7],
		Extrinsics: b.Extrinsics[lo*T*6 : (lo+n)*T*6],
		Samples:    b.Samples[lo : lo+n]}
}
