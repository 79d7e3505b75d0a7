package train

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/storage"

	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// ExportPEFT writes the predictor's adapters in PEFT's on-disk format to dir.
func ExportPEFT(d *vk.Device, p *model.Predictor, c *Config, dir string) error {
	var mods []model.LoRAWeights
	for _, a := range p.LoRAs {
		av, err := d.Download(a.A)
		if err != nil {
			return err
		}
		bv, err := d.Download(a.B)
		if err != nil {
			return err
		}
		mods = append(mods, model.LoRAWeights{Module: a.Module, R: a.R, In: a.In, Out: a.Out, A: av, B: bv})
	}
	base := c.Model.Checkpoint
	if base == "" {
		base = "random-init"
	}
	ac := model.NewAdapterConfig(c.LoRA.R, c.LoRA.Alpha, c.LoRA.RSLoRA, c.LoRA.Targets, base)
	ac.LoRADropout = c.LoRA.Dropout
	ac.ModulesToSave = model.ModuleNames(p.Cfg)
	var modules []model.ModuleTensor
	for _, m := range p.Modules() {
		v, err := d.Download(m.Param)
		if err != nil {
			return err
		}
		modules = append(modules, model.ModuleTensor{Name: m.Name, Shape: m.Param.Shape, Data: v})
	}
	if err := model.WritePEFTAdapter(dir, ac, mods, modules...); err != nil {
		return fmt.Errorf("train: export: %w", err)
	}
	return nil
}

// startSync mirrors the run folder to checkpoint.gcs_sync.url in the background, if set. The returned
// function runs a final pass and stops the syncer.
func (t *trainer) startSync(ctx context.Context, trigger *interface{ Trigger() }) (func(), error) {
	gs := t.cfg.Checkpoint.GCSSync
	if gs.URL == "" {
		return func() {}, nil
	}
	client, err := storage.NewClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("train: gcs sync %s: %w", gs.URL, err)
	}
	s, err := NewSyncer(client, SyncOptions{LocalDir: t.cfg.Logging.Dir, URL: gs.URL,
		Every: time.Duration(gs.EveryMinutes * float64(time.Minute)), Logf: t.progress.Printf})
	if err != nil {
		client.Close()
		return nil, err
	}
	*trigger = s
	return func() {
		// The final pass must run even when ctx was cancelled by SIGINT.
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := s.Close(cctx); err != nil {
			t.progress.Printf("gcs sync: %v", err)
		}
		client.Close()
	}, nil
}
