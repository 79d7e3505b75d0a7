package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/model"
)

// runConvert rewrites a torch.save checkpoint (or a safetensors file) as safetensors, one tensor in memory
// at a time, with names cleaned as the loader cleans them (spec §9.3). It reads both a bare
// torch.save(model.state_dict()) and a dict of state_dicts (the official checkpoints), in the zip format
// of PyTorch >= 1.6; the legacy format is refused with the way to re-save it.
func runConvert(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("convert", pflag.ContinueOnError)
	key := fs.String("key", "all", "state_dict to convert: a top-level key (predictor, encoder, target_encoder), \"\" for a file that is a bare state_dict, or all: a bare state_dict as is, else every state_dict under \"<key>.\"")
	dtype := fs.String("dtype", "", "convert floating-point tensors to f32, f16 (RNE, clamped to ±65504) or bf16 (RNE); default keeps stored types")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageErrorf("want IN and OUT paths, got %d arguments", fs.NArg())
	}
	in, out := fs.Arg(0), fs.Arg(1)
	outType := model.DTypeInvalid
	if *dtype != "" {
		dt, err := model.ParseDType(*dtype)
		if err != nil || !dt.IsFloat() {
			return usageErrorf("--dtype %q, want f32, f16, bf16 or f64", *dtype)
		}
		outType = dt
	}

	dicts, meta, closeAll, err := openForConvert(in, *key)
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	defer closeAll()

	type job struct {
		ref  model.TensorRef
		info model.TensorInfo // as written
	}
	var jobs []job
	var infos []model.TensorInfo
	for _, d := range dicts {
		for _, name := range d.sd.Names {
			ref := d.sd.Refs[name]
			info := ref.Info()
			info.Name = d.prefix + name
			if outType != model.DTypeInvalid && info.DType.IsFloat() {
				info.DType = outType
			}
			jobs = append(jobs, job{ref, info})
			infos = append(infos, info)
		}
	}
	if len(jobs) == 0 {
		return fmt.Errorf("convert: %s: no tensors under key %q", in, *key)
	}
	w, err := model.CreateSafetensors(out, infos, meta)
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	var total int64
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			w.Abort()
			return fmt.Errorf("convert: %w", err)
		}
		data, err := convertTensor(j.ref, j.info.DType)
		if err == nil {
			err = w.WriteTensor(j.info.Name, data)
		}
		if err != nil {
			w.Abort()
			return fmt.Errorf("convert: %w", err)
		}
		total += int64(len(data))
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	fmt.Fprintf(os.Stderr, "convert: wrote %d tensors (%.1f MB) to %s\n", len(jobs), float64(total)/1e6, out)
	return nil
}

type convertDict struct {
	prefix string // "" or "<key>."
	sd     *model.StateDict
}

// openForConvert opens the state_dicts to write and the metadata to carry: the source file name, the key
// and, for torch archives, the top-level scalars (epoch, loss, lr, ...).
func openForConvert(in, key string) ([]convertDict, map[string]string, func(), error) {
	meta := map[string]string{"format": "pt", "source": filepath.Base(in), "key": key}
	var dicts []convertDict
	if strings.HasSuffix(in, ".safetensors") {
		k := key
		if k == "all" {
			k = ""
		}
		sd, err := model.OpenStateDict(in, k)
		if err != nil {
			return nil, nil, nil, err
		}
		dicts = append(dicts, convertDict{"", sd})
		return dicts, meta, func() { sd.Close() }, nil
	}
	tf, err := model.OpenTorch(in)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, k := range tf.Keys() {
		if v, err := tf.Scalar(k); err == nil && v != nil && meta[k] == "" {
			if f, ok := v.(float64); ok {
				meta[k] = strconv.FormatFloat(f, 'g', -1, 64)
			} else {
				meta[k] = fmt.Sprint(v)
			}
		}
	}
	keys := []string{key}
	switch {
	case key == "all" && tf.IsStateDict():
		keys = []string{""} // torch.save(model.state_dict()): the file is the state_dict
	case key == "all":
		keys = tf.StateDictKeys()
		if len(keys) == 0 {
			tf.Close()
			return nil, nil, nil, fmt.Errorf("%s: neither a state_dict nor a dict holding state_dicts (top-level keys %v)", in, tf.Keys())
		}
	}
	for _, k := range keys {
		tensors, err := tf.StateDict(k)
		if err != nil {
			tf.Close()
			return nil, nil, nil, err
		}
		refs := make([]model.TensorRef, len(tensors))
		for i, t := range tensors {
			refs[i] = t
		}
		sd, err := model.NewStateDict(in, refs)
		if err != nil {
			tf.Close()
			return nil, nil, nil, err
		}
		prefix := ""
		if key == "all" && k != "" {
			prefix = k + "."
		}
		dicts = append(dicts, convertDict{prefix, sd})
	}
	return dicts, meta, func() { tf.Close() }, nil
}

// convertTensor reads one tensor and encodes it as dt, copying the stored bytes when no conversion is
// needed. F64 to F16/BF16 goes through float32, which can differ from a direct rounding only at exact
// float32 ties, far below what matters for weights.
func convertTensor(ref model.TensorRef, dt model.DType) ([]byte, error) {
	if ref.Info().DType == dt {
		return ref.ReadRaw()
	}
	f, err := ref.ReadFloat32()
	if err != nil {
		return nil, err
	}
	return model.EncodeFloat32(dt, f)
}
