package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"sort"
	"strconv"
)

// FeaturesFile is the TFDS file that declares every feature of the dataset: its kind, dtype and shape
// (droid-rlds §1). For DROID it declares the camera frames as 180×320×3 JPEG images.
const FeaturesFile = "features.json"

// FeatureSpec is one leaf of features.json, named as TFDS flattens it into the Example
// ("steps/observation/exterior_image_1_left").
type FeatureSpec struct {
	Key   string
	Kind  string // image, tensor or text
	DType string // uint8, float64, ... ("" for text)
	Shape []int  // per step for the leaves under steps/; -1 where the size varies
}

// ParseFeatures reads the leaves of features.json, sorted by key. TFDS writes it as nested nodes: a
// FeaturesDict ({"featuresDict": {"features": {name: node}}}) names its children, a Dataset
// ({"sequence": {"feature": node}}) adds no name, and leaves are {"image"|"tensor"|"text": {...}}.
func ParseFeatures(b []byte) ([]FeatureSpec, error) {
	var root featureNode
	if err := json.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("data: parse %s: %w", FeaturesFile, err)
	}
	var out []FeatureSpec
	if err := root.leaves("", &out); err != nil {
		return nil, fmt.Errorf("data: parse %s: %w", FeaturesFile, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// featureNode is one node of features.json; exactly one of its fields is set.
type featureNode struct {
	FeaturesDict *struct {
		Features map[string]featureNode `json:"features"`
	} `json:"featuresDict"`
	Sequence *struct {
		Feature featureNode `json:"feature"`
	} `json:"sequence"`
	Image  *featureLeaf    `json:"image"`
	Tensor *featureLeaf    `json:"tensor"`
	Text   json.RawMessage `json:"text"`
}

type featureLeaf struct {
	DType string `json:"dtype"`
	Shape struct {
		Dimensions []string `json:"dimensions"` // decimal strings (int64 in the proto's JSON form)
	} `json:"shape"`
}

func (n featureNode) leaves(key string, out *[]FeatureSpec) error {
	name := key
	if name == "" {
		name = "(root)"
	}
	leaf := func(kind string, l *featureLeaf) error {
		f := FeatureSpec{Key: key, Kind: kind, DType: l.DType}
		for i, d := range l.Shape.Dimensions {
			v, err := strconv.Atoi(d)
			if err != nil || v < -1 {
				return fmt.Errorf("%s: shape.dimensions[%d] = %q, want an integer >= -1", name, i, d)
			}
			f.Shape = append(f.Shape, v)
		}
		*out = append(*out, f)
		return nil
	}
	switch {
	case n.FeaturesDict != nil:
		for k, child := range n.FeaturesDict.Features {
			sub := k
			if key != "" {
				sub = key + "/" + k
			}
			if err := child.leaves(sub, out); err != nil {
				return err
			}
		}
		return nil
	case n.Sequence != nil:
		return n.Sequence.Feature.leaves(key, out)
	case n.Image != nil:
		return leaf("image", n.Image)
	case n.Tensor != nil:
		return leaf("tensor", n.Tensor)
	case n.Text != nil:
		*out = append(*out, FeatureSpec{Key: key, Kind: "text"})
		return nil
	}
	return fmt.Errorf("%s: no featuresDict, sequence, image, tensor or text", name)
}

// FrameSizes returns the size src's features.json declares for each image feature of fixed size
// (height × width × channels), by key. A source without features.json declares nothing: nil, no error.
func FrameSizes(ctx context.Context, src Source) (map[string]image.Point, error) {
	rc, err := src.Open(ctx, FeaturesFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("data: read %s/%s: %w", src, FeaturesFile, err)
	}
	feats, err := ParseFeatures(b)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, src)
	}
	sizes := map[string]image.Point{}
	for _, f := range feats {
		if f.Kind == "image" && len(f.Shape) == 3 && f.Shape[0] > 0 && f.Shape[1] > 0 {
			sizes[f.Key] = image.Pt(f.Shape[1], f.Shape[0])
		}
	}
	return sizes, nil
}
