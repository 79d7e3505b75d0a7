package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
	"github.com/vjepa-vk/vjepa-vk/dist"
	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// Options are the run-time choices of Train that are not part of the config.
type Options struct {
	Out     io.Writer  // progress and messages; nil = os.Stdout
	Device  *vk.Device // nil opens the default device (the node's LocalRank-th GPU)
	MaxStep int        // stop after this step (tests of resume); 0 = training.steps
	// Comm is the data-parallel job this process is one rank of (distributed.go); nil or a world of
	// one trains alone.
	Comm      dist.Comm
	LocalRank int // this rank's index among the job's ranks on this node
	// Overwrite lets a new run (checkpoint.resume "") delete an earlier run's outputs from its folder
	// and GCS mirror instead of refusing to start (rundir.go).
	Overwrite bool
	// Abort, once done (a second SIGINT), abandons the final GCS sync; nil never does.
	Abort context.Context
	// GCS bounds the GCS requests of the data source and the mirror; a nil Logf prints retries to Out.
	GCS data.GCSOptions
}

// ErrInterrupted is wrapped by Train's error when ctx was cancelled (SIGINT, SIGTERM) and the run
// stopped cleanly: its last finished step is checkpointed and --resume auto continues it.
var ErrInterrupted = errors.New("interrupted")

// InterruptedError says where a cancelled run stopped.
type InterruptedError struct {
	Step       int    // last finished step (0: none)
	Checkpoint string // the checkpoint of Step; "" when none exists
	StartUp    bool   // cancelled before the first step of this start
}

func (e *InterruptedError) Error() string {
	switch {
	case !e.StartUp:
		return fmt.Sprintf("train: interrupted after step %d, checkpoint %s; continue with --resume auto", e.Step, e.Checkpoint)
	case e.Checkpoint != "":
		return fmt.Sprintf("train: interrupted during start-up, nothing new to save (latest checkpoint %s, step %d); continue with --resume auto", e.Checkpoint, e.Step)
	}
	return "train: interrupted during start-up, before the first step; nothing was written"
}

func (e *InterruptedError) Unwrap() error { return ErrInterrupted }

// trainer holds one run's state.
type trainer struct {
	cfg    *Config
	opts   Options
	d      *vk.Device
	pcfg   model.PredictorConfig
	pred   *model.Predictor
	enc    *model.Encoder
	ep     *model.EncoderPass
	graph  *LossGraph
	opt    *optimizer
	scaler *LossScaler
	lr     LRSchedule
	wd     WeightDecaySchedule

	zeroS, stepS, normS, optS *vk.Stream

	loader   *data.Loader
	format   data.Format // the dataset the loaders read (OpenDataset)
	batches  int         // batches consumed from the loader (its position, for exact resume)
	video    []float32
	step     int
	val      *valRunner
	cache    *cacheSource // non-nil when training from a feature cache (no encoder, no image decoding)
	cacheF   *data.FeatureCache
	valLoss  *float64       // validation loss at the current step, if validation ran there
	metrics  *MetricsWriter // nil on ranks other than 0
	progress *Progress
	comm     dist.Comm      // nil: a world of one
	dp       *dataParallel  // the gradient all-reduce, with comm
	warnings *data.Warnings // data problems, reported once each across passes and validation loaders

	pending    *data.Batch // the first batch, read during setup to fail early on data without clips
	resumeCk   *Checkpoint // checkpoint found by findResume, restored once the state exists
	resumePath string      // its path ("" on a fresh start)
	ckptPath   string      // the latest checkpoint this start wrote or resumed from
	// norm is what data.lerobot.normalize does to the vectors (nil when off); resumeNorm is what the
	// checkpoint being resumed recorded, which must be the same.
	norm       *lerobot.Normalization
	resumeNorm json.RawMessage
	doneSteps  atomic.Int64
	gcs        *storage.Client // made on first use (restore, mirror)
	syncer     *Syncer
}

// Train runs the training described by cfg (already validated and resolved) until training.steps,
// ctx cancellation (SIGINT/SIGTERM: the current step finishes, a checkpoint is written) or an error.
func Train(ctx context.Context, cfg *Config, opts Options) (err error) {
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	t := &trainer{cfg: cfg, opts: opts}
	if opts.Comm != nil && opts.Comm.Size() > 1 {
		t.comm = opts.Comm
		if err := checkSameConfig(t.comm, cfg); err != nil {
			return err
		}
	}
	defer t.close()
	// A job starts as a whole: a signal reaches its ranks at different moments, and a rank leaving its
	// start-up early would leave the others waiting in a collective. It stops at the first step.
	if err := t.setup(t.collective(ctx)); err != nil {
		if ctx.Err() != nil && t.comm == nil {
			ie := &InterruptedError{Step: t.step, Checkpoint: t.resumePath, StartUp: true}
			if t.resumeCk != nil { // found, not yet restored
				ie.Step = t.resumeCk.Header.Step
			}
			return ie
		}
		return err
	}
	return t.run(ctx)
}

func (t *trainer) close() {
	if t.loader != nil {
		t.loader.Close()
	}
	if t.format != nil {
		closeDataset(t.format)
	}
	if t.cacheF != nil {
		t.cacheF.Close()
	}
	for _, s := range []*vk.Stream{t.zeroS, t.stepS, t.normS, t.optS} {
		if s != nil {
			s.Destroy()
		}
	}
	if t.val != nil && t.val.s != nil {
		t.val.s.Destroy()
	}
	if t.graph != nil {
		t.graph.Free()
	}
	if t.opt != nil {
		t.opt.free()
	}
	if t.dp != nil {
		t.dp.free()
	}
	if t.ep != nil {
		t.ep.Free()
	}
	if t.enc != nil {
		t.enc.Free()
	}
	if t.pred != nil {
		t.pred.Free()
	}
	if t.metrics != nil {
		t.metrics.Close()
	}
	if t.gcs != nil {
		t.gcs.Close()
	}
	if t.d != nil && t.opts.Device == nil {
		t.d.Close()
	}
}

// modelConfigs maps the run config onto the model's sizes.
func modelConfigs(c *Config) (model.PredictorConfig, model.EncoderConfig) {
	m := c.Model
	p := model.PredictorConfig{EmbedDim: m.EmbedDim, Dim: m.PredDim, Depth: m.Depth, Heads: m.Heads,
		Grid: m.Img / m.Patch, MLPRatio: m.MLPRatio, Extrinsics: m.Extrinsics, ActionDim: m.ActionDim, StateDim: m.StateDim}
	e := model.EncoderConfig{Dim: m.Encoder.Dim, Depth: m.Encoder.Depth, Heads: m.Encoder.Heads,
		MLPHidden: m.Encoder.MLPHidden, Patch: m.Patch, Tubelet: m.Tubelet}
	return p, e
}

// loadWeights opens the official checkpoint's predictor and encoder, or draws random weights (demo). The
// predictor is the base layout (7-D conditioning encoders): withModules puts new encoders over it.
func loadWeights(c *Config, pcfg model.PredictorConfig, ecfg model.EncoderConfig) (pw, ew model.WeightSource, closeFn func(), err error) {
	pcfg = pcfg.Official()
	if c.Model.Checkpoint == "" {
		seed := uint64(c.Training.Seed)
		return model.InitPredictor(pcfg, seed), model.InitEncoder(ecfg, seed+1), func() {}, nil
	}
	psd, err := model.OpenStateDict(c.Model.Checkpoint, "predictor")
	if err != nil {
		return nil, nil, nil, err
	}
	if err := model.CheckPredictor(psd.Source, pcfg, psd.Infos()); err != nil {
		psd.Close()
		return nil, nil, nil, err
	}
	esd, err := model.OpenStateDict(c.Model.Checkpoint, "encoder")
	if err != nil {
		psd.Close()
		return nil, nil, nil, err
	}
	if err := model.CheckEncoder(esd.Source, ecfg, esd.Infos()); err != nil {
		psd.Close()
		esd.Close()
		return nil, nil, nil, err
	}
	return psd, esd, func() { psd.Close(); esd.Close() }, nil
}

// setup checks everything that can be checked cheaply first (run folder, checkpoint to resume, config
// changes), then builds the model, the loss graph and the optimizer, restores the checkpoint, opens the
// data and reads its first batch, and only then writes into the run folder: a run that cannot start
// leaves nothing behind. SIGINT is honoured between the phases.
func (t *trainer) setup(ctx context.Context) error {
	c := t.cfg
	if c.Training.LossExp != 1 {
		return fmt.Errorf("train: training.loss_exp %g: only 1 (mean L1, the official loss) is implemented", c.Training.LossExp)
	}
	if c.Checkpoint.Export.Merged && c.Model.Checkpoint == "" {
		return fmt.Errorf("train: checkpoint.export.merged needs the base weights in model.checkpoint (random-init runs export the adapter only)")
	}
	if c.Training.ValEvery > 0 && c.Data.ValEpisodes == 0 {
		return fmt.Errorf("train: training.val_every %d needs held-out episodes: set data.val_episodes > 0", c.Training.ValEvery)
	}
	if c.Data.FeatureCache != "" && c.Data.ValEpisodes > 0 {
		return fmt.Errorf("train: data.feature_cache with data.val_episodes: validation reads episodes, not the cache; set data.val_episodes: 0")
	}
	progress := c.Logging.Progress
	if !t.root() {
		progress = "off" // rank 0 reports for the job
	}
	t.progress = NewProgress(t.opts.Out, progress, c.Training.Steps, c.Logging.Every)
	if err := t.prepareRunDirs(ctx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	t.d = t.opts.Device
	if t.d == nil {
		if t.d, err = vk.Open(vk.Options{LocalRank: t.opts.LocalRank}); err != nil {
			return err
		}
	}
	pcfg, ecfg := modelConfigs(c)
	t.pcfg = pcfg
	pw, ew, closeW, err := loadWeights(c, pcfg, ecfg)
	if err != nil {
		return err
	}
	defer closeW()
	prec := model.Precision(c.Model.Precision)
	if pw, err = withModules(pcfg, pw); err != nil {
		return err
	}
	if t.pred, err = model.LoadPredictor(t.d, pcfg, pw, prec); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.Data.FeatureCache == "" {
		if t.enc, err = model.LoadEncoder(t.d, ecfg, ew, prec); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := t.pred.AddLoRA(c.LoRA.Model()); err != nil {
		return err
	}
	if err := t.pred.TrainModules(); err != nil { // other state/action widths: new encoders, trained in full
		return err
	}
	t.pred.SetBatchPart(t.rank()) // this rank's clips of the global batch draw their dropout masks
	B, T := c.Data.BatchSize, c.Data.Frames
	// Each frame is encoded alone, duplicated into a 2-frame tubelet (spec §6.1, §8.4).
	if t.enc != nil {
		if t.ep, err = t.enc.NewPass(B*T, c.Model.Tubelet, c.Model.Img, c.Model.Img); err != nil {
			return err
		}
	}
	if t.graph, err = NewLossGraph(t.pred, B, T, c.Training.AutoSteps, c.Model.GradCheckpointing); err != nil {
		return err
	}
	if t.opt, err = newOptimizer(t.d, t.pred, c.Training.Optimizer == "adamw8bit"); err != nil {
		return err
	}
	if t.comm != nil {
		if t.dp, err = newDataParallel(t.comm, t.d, t.opt); err != nil {
			return err
		}
	}
	t.scaler = NewLossScaler(c.Training.LossScale)
	t.lr, t.wd = NewLRSchedule(c.Training), NewWeightDecaySchedule(c.Training)
	if err := t.record(); err != nil {
		return err
	}
	if t.resumeCk != nil {
		if err := t.restoreState(t.resumeCk, t.resumePath); err != nil {
			return err
		}
		t.resumeCk = nil // the tensors are on the device now
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := t.openLoader(ctx); err != nil {
		return err
	}
	if !t.root() {
		return nil // rank 0 writes the run folder
	}
	return t.openRunDir()
}

// record builds the four streams once; every step replays them.
func (t *trainer) record() error {
	var err error
	mk := func() *vk.Stream {
		if err != nil {
			return nil
		}
		var s *vk.Stream
		s, err = t.d.NewStream(false)
		return s
	}
	t.zeroS, t.stepS, t.normS, t.optS = mk(), mk(), mk(), mk()
	if err != nil {
		return err
	}
	ZeroGrads(t.zeroS, t.pred)
	t.pred.SetTraining(true) // adapter dropout in the training step only
	defer t.pred.SetTraining(false)
	if t.ep != nil {
		t.ep.Forward(t.stepS)
		vk.CopyBlocks(t.stepS, t.graph.Features, t.ep.Out, vk.CopyArgs{Count: 1, Rows: 1, Cols: t.ep.Out.Numel()})
	}
	t.graph.Forward(t.stepS)
	t.graph.Backward(t.stepS)
	t.opt.recordNorm(t.normS)
	t.opt.recordUpdate(t.optS)
	for _, s := range []*vk.Stream{t.zeroS, t.stepS, t.normS, t.optS} {
		if err := s.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (t *trainer) loaderConfig() data.LoaderConfig {
	lc := ClipLoaderConfig(t.cfg, t.format)
	if t.warnings == nil {
		t.warnings = data.NewWarnings(t.warn)
	}
	lc.Warn = t.warnings.Warn
	if t.comm != nil {
		lc.Exchange = t.comm // rank r draws clips [r·b, (r+1)·b) of the global batch
	}
	return lc
}

// openLoader starts the loader and skips the batches a resumed run already consumed: the loader's
// sequence depends only on its configuration, so this reproduces the uninterrupted run exactly.
func (t *trainer) openLoader(ctx context.Context) error {
	if err := t.openData(ctx); err != nil {
		return err
	}
	return t.checkNormalization()
}

// checkNormalization refuses to resume a run whose dataset statistics changed since the checkpoint: the
// adapters learnt vectors normalized with the old ones.
func (t *trainer) checkNormalization() error {
	if t.resumeNorm == nil {
		return nil
	}
	now, err := json.Marshal(t.norm)
	if err != nil {
		return err
	}
	if !bytes.Equal(now, t.resumeNorm) {
		return fmt.Errorf("train: resume: the statistics data.lerobot.normalize uses changed since the checkpoint (it recorded %s, the dataset gives %s)", t.resumeNorm, now)
	}
	return nil
}

func (t *trainer) openData(ctx context.Context) error {
	if dir := t.cfg.Data.FeatureCache; dir != "" {
		var err error
		if t.norm, err = configNormalization(ctx, t.cfg, t.gcsOptions()); err != nil {
			return err
		}
		want, _, err := cacheConfig(t.cfg, t.norm)
		if err != nil {
			return err
		}
		if t.cacheF, err = data.OpenFeatureCache(dir, want); err != nil {
			return fmt.Errorf("train: %w (build it with: vjepa-vk encode --config %s --out %s)", err, t.cfg.Source(), dir)
		}
		if t.cache, err = newCacheSource(t.cacheF, t.cfg.Data.BatchSize, t.cfg.Data.Frames, uint64(t.cfg.Data.Seed), nil, t.rank(), t.ranks()); err != nil {
			return err
		}
		t.cache.skip(t.batches)
		return nil
	}
	var err error
	if t.format, err = OpenDataset(ctx, t.cfg, t.gcsOptions()); err != nil {
		return err
	}
	t.norm = datasetNormalization(t.cfg, t.format)
	shards := t.format.Shards()
	lc := t.loaderConfig()
	if n := t.cfg.Data.ValEpisodes; n > 0 {
		val := heldOut(shards, n)
		lc.Keep = func(shard, record int) bool { return !val(shard, record) }
		if err := t.setupValidation(ctx, t.format, shards); err != nil {
			return err
		}
	}
	if t.loader, err = data.NewFormatLoader(ctx, t.format, lc); err != nil {
		return err
	}
	for i := 0; i < t.batches; i++ {
		if _, err := t.loader.Next(ctx); err != nil {
			return fmt.Errorf("train: resume: skip batch %d of %d: %w", i+1, t.batches, err)
		}
	}
	// Read the first batch now: a source that gives no clip at all (every shard corrupt, every episode
	// filtered) fails here, before anything is written to the run folder.
	t.pending, err = t.loader.Next(ctx)
	if errors.Is(err, io.EOF) {
		n := t.loader.Counts()
		return fmt.Errorf("train: data source %s gave no clip of %d frames for training: %d records read, %d corrupt records, %d truncated shards, %d malformed episodes, %d episodes too short, %d filtered out (success_only, idle_filter)",
			t.cfg.Data.Source, t.cfg.Data.Frames, n.Records, n.CorruptRecords, n.TruncatedShards, n.BadEpisodes, n.ShortEpisodes, n.FailureFiltered+n.IdleFiltered+n.StaticFiltered)
	}
	return err
}

// uploadFrames writes a batch's frames into the encoder's input, each frame duplicated into a 2-frame
// tubelet (spec §6.1): [B·T, 3, tubelet, H, W].
func (t *trainer) uploadFrames(b *data.Batch) error {
	T, H, W := b.T, b.H, b.W
	if b.B != t.cfg.Data.BatchSize || T != t.cfg.Data.Frames || H != t.cfg.Model.Img || W != t.cfg.Model.Img {
		return fmt.Errorf("train: batch [%d, 3, %d, %d, %d] does not match the config's [%d, 3, %d, %d, %d]",
			b.B, T, H, W, t.cfg.Data.BatchSize, t.cfg.Data.Frames, t.cfg.Model.Img, t.cfg.Model.Img)
	}
	plane := H * W
	tt := t.cfg.Model.Tubelet
	if len(t.video) != b.B*T*3*tt*plane {
		t.video = make([]float32, b.B*T*3*tt*plane)
	}
	for bi := 0; bi < b.B; bi++ {
		for ti := 0; ti < T; ti++ {
			for c := 0; c < 3; c++ {
				src := b.Frames[((bi*3+c)*T+ti)*plane:][:plane]
				for k := 0; k < tt; k++ {
					copy(t.video[((((bi*T+ti)*3+c)*tt)+k)*plane:][:plane], src)
				}
			}
		}
	}
	return t.d.Upload(t.ep.Video, t.video)
}

// upload writes one batch into the step's input tensors: frames, states, actions and extrinsics.
func (t *trainer) upload(b *data.Batch) error {
	if err := t.uploadFrames(b); err != nil {
		return err
	}
	g := t.graph
	if err := t.d.Upload(g.States, b.States); err != nil {
		return err
	}
	if err := t.d.Upload(g.Actions, b.Actions); err != nil {
		return err
	}
	if g.Extrinsics.Valid() {
		return t.d.Upload(g.Extrinsics, b.Extrinsics)
	}
	return nil
}

// nextBatch loads the next micro-batch into the step's inputs, from the loader or the feature cache.
func (t *trainer) nextBatch(ctx context.Context, step int) error {
	g := t.graph
	if t.cache != nil {
		if err := t.cache.next(); err != nil {
			return err
		}
		t.batches++
		for _, u := range []struct {
			t vk.Tensor
			v []float32
		}{{g.Features, t.cache.feats}, {g.States, t.cache.states}, {g.Actions, t.cache.actions}} {
			if err := t.d.Upload(u.t, u.v); err != nil {
				return err
			}
		}
		if g.Extrinsics.Valid() { // RLDS has no extrinsics (spec §7.6): zeros
			return t.d.Upload(g.Extrinsics, make([]float32, g.Extrinsics.Numel()))
		}
		return nil
	}
	b, err := t.pending, error(nil)
	t.pending = nil
	if b == nil {
		b, err = t.loader.Next(ctx)
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("train: data source %s ran out of clips at step %d", t.cfg.Data.Source, step)
	}
	if err != nil {
		return err
	}
	t.batches++
	return t.upload(b)
}

func (t *trainer) run(ctx context.Context) error {
	c := t.cfg
	last := c.Training.Steps
	if t.opts.MaxStep > 0 {
		last = min(last, t.opts.MaxStep)
	}
	t.progress.Printf("%s", t.banner())
	if t.step > 0 {
		t.progress.Printf("resumed at step %d from %s", t.step, t.resumePath)
	}
	t.doneSteps.Store(int64(t.step))
	finalSync, err := t.startSync(ctx)
	if err != nil {
		return err
	}
	synced := false
	defer func() {
		if !synced { // a failed run still mirrors what it has; its own error is the one reported
			finalSync()
		}
	}()
	interrupted, err := t.loop(ctx, last)
	if err != nil {
		return err
	}
	t.progress.Finish()
	if err := t.save(); err != nil {
		return err
	}
	if err := t.export(); err != nil {
		return err
	}
	var stopped error
	if interrupted {
		stopped = &InterruptedError{Step: t.step, Checkpoint: t.ckptPath}
		t.progress.Printf("interrupted: checkpoint written at step %d", t.step)
	} else if err := t.metrics.LogRunEnd(t.step, true); err != nil {
		return err
	}
	t.progress.Printf("%s", t.summary(last))
	synced = true
	if err := finalSync(); err != nil {
		if stopped != nil {
			return fmt.Errorf("%v; and %w", stopped, err)
		}
		return err
	}
	if t.comm != nil {
		// The job ends when rank 0 has written its files: a failure there still fails the job.
		if err := t.comm.Barrier(); err != nil {
			return err
		}
	}
	return stopped
}

// loop trains up to step last. It stops early, with interrupted set, when ctx is cancelled: during a
// step (which is then not counted) or during validation (the step is kept, its validation dropped).
func (t *trainer) loop(ctx context.Context, last int) (interrupted bool, err error) {
	c := t.cfg
	for t.step < last {
		if t.stopRequested(ctx) {
			return true, nil
		}
		m, err := t.trainStep(ctx)
		if err != nil {
			if ctx.Err() != nil && t.comm == nil {
				return true, nil
			}
			return false, err
		}
		t.doneSteps.Store(int64(t.step))
		t.progress.Update(m)
		if err := t.metrics.LogStep(m); err != nil {
			return false, err
		}
		t.valLoss = nil
		if t.val != nil && c.Training.ValEvery > 0 && (t.step%c.Training.ValEvery == 0 || t.step == last) {
			vm, err := t.validate(t.collective(ctx))
			if err != nil {
				if ctx.Err() != nil && t.comm == nil {
					t.progress.Printf("validation at step %d interrupted", t.step)
					return true, nil
				}
				return false, err
			}
			t.valLoss = &vm.Loss
			if err := t.metrics.LogVal(vm); err != nil {
				return false, err
			}
			t.progress.Validation(vm)
		}
		if c.Checkpoint.Every > 0 && t.step%c.Checkpoint.Every == 0 && t.step < last {
			if err := t.save(); err != nil {
				return false, err
			}
			if t.syncer != nil {
				t.syncer.Trigger()
			}
		}
	}
	return false, nil
}

// trainStep runs one optimizer step: grad_accum micro-batches of forward+backward, the global gradient
// norm (inf/nan check, clipping), then AdamW.
func (t *trainer) trainStep(ctx context.Context) (_ StepMetrics, err error) {
	c := t.cfg
	start := time.Now()
	step := t.step + 1
	// A step that does not finish (an error, or SIGINT while waiting for data) must not move the data
	// position that a checkpoint of the previous step records: a resume re-reads these batches.
	startBatches := t.batches
	defer func() {
		if err != nil {
			t.batches = startBatches
		}
	}()
	scale := t.scaler.Factor()
	if err := t.d.Upload(t.graph.DLoss, []float32{float32(scale)}); err != nil {
		return StepMetrics{}, err
	}
	if err := t.zeroS.Run(); err != nil {
		return StepMetrics{}, err
	}
	var ltf, lar float64
	for k := 0; k < c.Training.GradAccum; k++ {
		if seed := t.pred.DropoutSeed(); seed.Valid() {
			// New masks every micro-batch, derived from the step so that a resumed run draws the same ones.
			micro := (step-1)*c.Training.GradAccum + k
			if err := t.d.WriteBytes(seed, binary.LittleEndian.AppendUint32(nil, dropoutSeed(c.Training.Seed, micro))); err != nil {
				return StepMetrics{}, err
			}
		}
		if err := t.nextBatch(t.collective(ctx), step); err != nil {
			return StepMetrics{}, err
		}
		if err := t.stepS.Run(); err != nil {
			return StepMetrics{}, fmt.Errorf("train: step %d: %w", step, err)
		}
		l1, err := t.d.Download(t.graph.LossTF)
		if err != nil {
			return StepMetrics{}, err
		}
		l2, err := t.d.Download(t.graph.LossAR)
		if err != nil {
			return StepMetrics{}, err
		}
		ltf += float64(l1[0]) / float64(c.Training.GradAccum)
		lar += float64(l2[0]) / float64(c.Training.GradAccum)
	}
	if t.dp != nil {
		// Sum the ranks' gradients and losses: each rank's are of its mean over b clips.
		if ltf, lar, err = t.dp.reduce(ltf, lar, ctx.Err() != nil); err != nil {
			return StepMetrics{}, err
		}
		ltf, lar = ltf/float64(t.ranks()), lar/float64(t.ranks())
	}
	if err := t.normS.Run(); err != nil {
		return StepMetrics{}, err
	}
	acc, err := t.d.Download(t.opt.acc)
	if err != nil {
		return StepMetrics{}, err
	}
	// Gradients hold scale·accum·ranks·true gradient; the norm is reported unscaled.
	unscale := 1 / (scale * float64(c.Training.GradAccum*t.ranks()))
	norm := math.Sqrt(float64(acc[0])) * unscale
	finite := acc[1] == 0 && !math.IsInf(norm, 0) && !math.IsNaN(norm)
	apply := t.scaler.Update(finite)
	clip := 1.0
	if c.Training.ClipGradNorm > 0 && norm > c.Training.ClipGradNorm {
		clip = c.Training.ClipGradNorm / (norm + 1e-6)
	}
	lr, wd := t.lr.At(step), t.wd.At(step)
	if apply {
		t.opt.steps++
		n := float64(t.opt.steps)
		b1, b2 := c.Training.Betas[0], c.Training.Betas[1]
		h := vk.AdamHyper{LR: float32(lr), Beta1: float32(b1), Beta2: float32(b2), Eps: float32(c.Training.Eps),
			WeightDecay: float32(wd), BC1: float32(1 - math.Pow(b1, n)), BC2: float32(1 - math.Pow(b2, n)),
			GradScale: float32(unscale * clip)}
		if err := t.d.Upload(t.opt.hyper, h.Floats()); err != nil {
			return StepMetrics{}, err
		}
		if err := t.optS.Run(); err != nil {
			return StepMetrics{}, err
		}
	}
	t.step = step
	dt := time.Since(start).Seconds()
	return StepMetrics{Step: step, Loss: ltf + lar, LossTF: ltf, LossRollout: lar, LR: lr, WeightDecay: wd,
		GradNorm: norm, LossScale: scale, Skipped: !apply, StepTime: dt,
		ClipsPerSec: float64(c.Data.BatchSize*c.Training.GradAccum*t.ranks()) / dt}, nil
}

// checkpoint tensors: LoRA weights under their PEFT names, optimizer state under "opt.<name>.<part>".
func (t *trainer) checkpoint() (*Checkpoint, error) {
	var cfgYAML strings.Builder
	if err := Print(&cfgYAML, t.cfg); err != nil {
		return nil, err
	}
	pos, _ := json.Marshal(map[string]int{"batches": t.batches})
	steps, _ := json.Marshal(t.opt.steps)
	ck := &Checkpoint{Header: CheckpointHeader{
		Step: t.step, Data: pos, LR: t.lr.At(max(t.step, 1)), WeightDecay: t.wd.At(max(t.step, 1)),
		LossScale: *t.scaler, Config: cfgYAML.String(), ValLoss: t.valLoss,
		Extra: map[string]json.RawMessage{"adam_steps": steps},
	}}
	if t.norm != nil {
		norm, err := json.Marshal(t.norm)
		if err != nil {
			return nil, err
		}
		ck.Header.Extra["normalization"] = norm
	}
	for _, st := range t.opt.state() {
		raw, err := t.d.ReadBytes(st.t)
		if err != nil {
			return nil, err
		}
		dt := DType("F32")
		if st.t.DType == vk.U8 {
			dt = DType("U8")
		}
		ck.Tensors = append(ck.Tensors, Tensor{Name: st.name, DType: dt, Shape: st.t.Shape, Data: raw})
	}
	return ck, nil
}

func (t *trainer) save() error {
	if err := t.checkSameState(); err != nil {
		return err
	}
	if !t.root() {
		return nil // every rank holds the same state; rank 0 writes it
	}
	ck, err := t.checkpoint()
	if err != nil {
		return err
	}
	t.ckptPath, err = NewCheckpointStore(t.cfg.Checkpoint).Save(ck)
	return err
}

// export writes PEFT-format adapters (adapter_model.safetensors + adapter_config.json) to
// <logging.dir>/adapter.
func (t *trainer) export() error {
	if !t.root() {
		return nil
	}
	c := t.cfg
	dir := filepath.Join(c.Logging.Dir, AdapterDir)
	if c.Checkpoint.Export.PEFT || c.Checkpoint.Export.Merged {
		if err := ExportPEFT(t.d, t.pred, c, dir); err != nil {
			return err
		}
		if t.norm != nil {
			norm, err := json.Marshal(t.norm)
			if err != nil {
				return err
			}
			if err := writeNormalization(dir, norm); err != nil {
				return err
			}
		}
	}
	if !c.Checkpoint.Export.Merged {
		return nil
	}
	ad, err := model.ReadAdapter(dir)
	if err != nil {
		return err
	}
	sd, err := model.OpenStateDict(c.Model.Checkpoint, "predictor")
	if err != nil {
		return err
	}
	defer sd.Close()
	dt := model.DTypeF32
	if c.Model.Precision == "fp16" {
		dt = model.DTypeF16
	} else if c.Model.Precision == "bf16" {
		dt = model.DTypeBF16
	}
	out := filepath.Join(c.Logging.Dir, MergedFile)
	if err := model.MergeAdapter(out, sd, ad, dt); err != nil {
		return fmt.Errorf("train: export merged predictor: %w", err)
	}
	t.progress.Printf("exported merged predictor to %s", out)
	return nil
}

// dropoutSeed mixes the run seed and the step (SplitMix64 finalizer) into the adapter-dropout seed.
func dropoutSeed(seed int64, step int) uint32 {
	z := uint64(seed)*0x9e3779b97f4a7c15 + uint64(step)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return uint32(z ^ z>>31)
}
