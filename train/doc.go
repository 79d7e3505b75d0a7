// Package train holds everything the V-JEPA 2-AC LoRA trainer needs around the GPU work: the run
// configuration (config.go), the learning-rate, weight-decay and loss-scale schedules (schedule.go, spec §10),
// crash-safe checkpoint files with a keep-last/keep-best manifest (ckptfile.go), the run folder and what a
// new run may do to it (rundir.go), resuming with fallback and config checks (resume.go), background
// mirroring of a run folder to Google Cloud Storage (gcssync.go), per-step metrics as JSONL and TensorBoard
// event files (metrics.go, tbsummary.go), a terminal progress line (progress.go) and PNG plots of a finished
// or running run (report.go).
//
// A training loop uses them in this order:
//
//	cfg, err := train.Load("configs/demo.yaml", sets)       // parse, --set overrides, defaults, validation
//	path, err := train.LatestCheckpoint(cfg.Checkpoint.Dir) // resume: then train.ReadCheckpoint(path)
//	lr, wd := train.NewLRSchedule(cfg.Training), train.NewWeightDecaySchedule(cfg.Training)
//	mw, err := train.NewMetricsWriter(cfg.Logging.Dir, train.MetricsOptions{JSONL: true, TensorBoard: true})
//	bar := train.NewProgress(os.Stdout, cfg.Logging.Progress, cfg.Training.Steps, cfg.Logging.Every)
//	store := train.NewCheckpointStore(cfg.Checkpoint)       // keep-last N + best val loss, manifest.json
//	syncer, err := train.NewSyncer(client, train.SyncOptions{LocalDir: cfg.Logging.Dir, URL: ...}) // optional
//	for s := start + 1; s <= cfg.Training.Steps; s++ {
//		rate := lr.At(s) // stepped once before each iteration, s = 1, 2, ... (spec §10)
//		...
//		mw.LogStep(m); bar.Update(m)
//		if s%cfg.Checkpoint.Every == 0 { store.Save(ck); syncer.Trigger() }
//	}
//
// Nothing in this set of files touches Vulkan; the loop, the losses (spec §6) and the optimizer kernels
// live next to them and call into model and vk.
package train
