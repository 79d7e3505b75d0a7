package train

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
	"github.com/vjepa-vk/vjepa-vk/model"
)

// Dataset formats data.format accepts.
const (
	FormatRLDS    = "rlds"
	FormatLeRobot = "lerobot"
)

// OpenDataset opens the dataset of c.Data in its format (DROID RLDS, or LeRobot with the data.lerobot
// mapping) and checks that its state and action widths are the model's (model.state_dim,
// model.action_dim). Close it (io.Closer) when done: a remote LeRobot dataset keeps video copies.
func OpenDataset(ctx context.Context, c *Config, gcs data.GCSOptions) (data.Format, error) {
	src, err := data.OpenSourceWith(ctx, c.Data.Source, gcs)
	if err != nil {
		return nil, err
	}
	var f data.Format
	switch c.Data.Format {
	case FormatLeRobot:
		if f, err = lerobot.Open(ctx, src, lerobot.Options{Mapping: c.Data.LeRobot}); err != nil {
			return nil, err
		}
	default:
		if f, err = data.OpenRLDS(ctx, src, "train", 0); err != nil {
			return nil, err
		}
	}
	s, a := f.Dims()
	if s != c.Model.StateDim || a != c.Model.ActionDim {
		closeDataset(f)
		return nil, fmt.Errorf("config %s: model.state_dim %d and model.action_dim %d, but %s gives %d-D states and %d-D actions (set them to %d and %d)",
			c.Source(), c.Model.StateDim, c.Model.ActionDim, f, s, a, s, a)
	}
	return f, nil
}

// datasetNormalization is what data.lerobot.normalize does to the vectors of f (nil when off, or RLDS),
// with the rows each of c's clip actions sums under action_reduce sum (inference needs them to map a raw
// action).
func datasetNormalization(c *Config, f data.Format) *lerobot.Normalization {
	if d, ok := f.(*lerobot.Dataset); ok {
		return d.Normalization().ForActions(c.Data.LeRobot.ActionReduce, ClipLoaderConfig(c, f).Clip.Stride())
	}
	return nil
}

// configNormalization is the normalization of c's dataset, read from its metadata and statistics alone
// (training from a feature cache opens no loader); nil when data.lerobot.normalize is off.
func configNormalization(ctx context.Context, c *Config, gcs data.GCSOptions) (*lerobot.Normalization, error) {
	if c.Data.Format != FormatLeRobot || c.Data.LeRobot.Normalize == "" {
		return nil, nil
	}
	f, err := OpenDataset(ctx, c, gcs)
	if err != nil {
		return nil, err
	}
	defer closeDataset(f)
	return datasetNormalization(c, f), nil
}

// writeNormalization writes the normalization (JSON) a run's vectors went through into an adapter
// folder as lerobot.NormalizationFile, for whoever maps the model's inputs and outputs back to the
// robot's units.
func writeNormalization(dir string, raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return fmt.Errorf("train: normalization: %w", err)
	}
	out.WriteByte('\n')
	return writeFileAtomic(filepath.Join(dir, lerobot.NormalizationFile), func(w io.Writer) error {
		_, err := w.Write(out.Bytes())
		return err
	})
}

func closeDataset(f data.Format) {
	if c, ok := f.(io.Closer); ok {
		c.Close()
	}
}

// withModules puts freshly initialised conditioning encoders of the config's widths over the base
// weights (model.InitModules), when the widths are not the official 7.
func withModules(pcfg model.PredictorConfig, base model.WeightSource) (model.WeightSource, error) {
	if len(model.ModuleNames(pcfg)) == 0 {
		return base, nil
	}
	top, err := model.InitModules(pcfg, base)
	if err != nil {
		return nil, err
	}
	return model.Overlay{Top: top, Base: base}, nil
}
