package train

import "github.com/vjepa-vk/vjepa-vk/data"

// ClipLoaderConfig is the loader configuration c's data section gives for the dataset f: the clip window
// (frames, fps, camera; LeRobot's recorded rate), the image size and crop, the filters, the batch size,
// workers, shuffling and seed. Training and vjepa-vk eval read clips the same way through it.
func ClipLoaderConfig(c *Config, f data.Format) data.LoaderConfig {
	lc := data.DefaultLoaderConfig()
	lc.Clip.Frames, lc.Clip.FPS, lc.Clip.Camera = c.Data.Frames, c.Data.FPS, c.Data.Camera
	if r, ok := f.(interface{ FPS() float64 }); ok {
		lc.Clip.SourceFPS = r.FPS() // LeRobot records its rate; RLDS is DROID's 15 Hz
	}
	if c.Data.Camera == "exterior_random" && c.Data.Format != FormatLeRobot {
		lc.Clip.Camera = data.CameraRandomExterior
	}
	lc.Image.Height, lc.Image.Width = c.Model.Img, c.Model.Img
	lc.Filter.SuccessOnly = c.Data.SuccessOnly
	lc.Filter.Idle.Enabled = c.Data.IdleFilter
	lc.BatchSize, lc.Workers, lc.ShuffleBuffer = c.Data.BatchSize, c.Data.Workers, c.Data.ShuffleBuffer
	lc.Seed = uint64(c.Data.Seed)
	return lc
}

// HeldOut selects the validation split of data.val_episodes (n) among shards: the episodes training
// never sees, which vjepa-vk eval evaluates by default.
func HeldOut(shards []data.Shard, n int) func(shard, record int) bool { return heldOut(shards, n) }
