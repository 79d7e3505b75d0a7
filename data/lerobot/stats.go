package lerobot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
)

// EpisodesStatsFile is v2.1's per-episode statistics, one JSON object per line:
// {"episode_index": i, "stats": {feature: {"min", "max", "mean", "std", "count"}}}.
const EpisodesStatsFile = "meta/episodes_stats.jsonl"

// Normalizations Mapping.Normalize accepts: off (""), or LeRobot's NormalizationMode MEAN_STD and
// MIN_MAX.
var Normalizations = []string{"", "mean_std", "min_max"}

// normEps is LeRobot's guard against a zero spread (policies' Normalize: std + 1e-8, max − min + 1e-8).
const normEps = 1e-8

// FeatureStats are one vector feature's statistics over the dataset's rows, per dimension.
type FeatureStats struct {
	Mean  []float64 `json:"mean"`
	Std   []float64 `json:"std"`
	Min   []float64 `json:"min"`
	Max   []float64 `json:"max"`
	Count int64     `json:"count"` // rows
}

// Normalization is what Mapping.Normalize did to the state and action columns, with the statistics it
// used, so that whoever reads the model's inputs or outputs can map them back: for mean_std
// x = v·(std + 1e-8) + mean, for min_max x = (v + 1)/2·(max − min + 1e-8) + min. Training writes it
// next to the adapter (NormalizationFile).
type Normalization struct {
	Mode   string            `json:"mode"`   // mean_std or min_max
	Source string            `json:"source"` // the file the statistics came from
	State  NormalizedFeature `json:"state"`
	Action NormalizedFeature `json:"action"`
	// ActionRows is how many normalized rows one of the model's actions sums (action_reduce: sum at a
	// stride of that many rows): such an action is Σ (x_r − shift)/scale = (X − rows·shift)/scale of the
	// raw sum X, so inference needs it to map a raw action. 0 (omitted): one row (first, last, mean).
	ActionRows int `json:"action_rows,omitempty"`
}

// NormalizedFeature is one normalized column and its statistics.
type NormalizedFeature struct {
	Column string `json:"column"`
	FeatureStats
}

// NormalizationFile is the name of the JSON encoding of a Normalization in an adapter folder.
const NormalizationFile = "normalization.json"

// ForActions is n for the model's actions as a clip configuration cuts them: with action_reduce sum
// each sums stride rows (ActionRows, recorded even when 1, so that inference can tell a sum from an older
// record without it), else n itself. nil stays nil.
func (n *Normalization) ForActions(reduce string, stride int) *Normalization {
	if n == nil || reduce != "sum" {
		return n
	}
	c := *n
	c.ActionRows = max(stride, 1)
	return &c
}

// ParseNormalization reads a NormalizationFile (or the same JSON recorded elsewhere; name says where in
// errors) and checks it on its own: a known mode, and for each feature the statistics the mode uses,
// finite, of one width, std >= 0.
func ParseNormalization(name string, b []byte) (*Normalization, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	n := &Normalization{}
	if err := dec.Decode(n); err != nil {
		return nil, fmt.Errorf("lerobot: %s: %w", name, err)
	}
	if n.Mode != "mean_std" && n.Mode != "min_max" {
		return nil, fmt.Errorf("lerobot: %s: mode %q: want mean_std or min_max", name, n.Mode)
	}
	if n.ActionRows < 0 {
		return nil, fmt.Errorf("lerobot: %s: action_rows %d: want >= 0", name, n.ActionRows)
	}
	for _, f := range []struct {
		key string
		st  *FeatureStats
	}{{"state", &n.State.FeatureStats}, {"action", &n.Action.FeatureStats}} {
		keys, vals := []string{"mean", "std"}, [][]float64{f.st.Mean, f.st.Std}
		if n.Mode == "min_max" {
			keys, vals = []string{"min", "max"}, [][]float64{f.st.Min, f.st.Max}
		}
		if len(vals[0]) == 0 || len(vals[1]) != len(vals[0]) {
			return nil, fmt.Errorf("lerobot: %s: %s.%s has %d values, %s.%s %d: want one per dimension, at least 1",
				name, f.key, keys[0], len(vals[0]), f.key, keys[1], len(vals[1]))
		}
		for i, v := range vals {
			for k, x := range v {
				if math.IsNaN(x) || math.IsInf(x, 0) || (keys[i] == "std" && x < 0) {
					return nil, fmt.Errorf("lerobot: %s: %s.%s[%d] = %v, want a finite number (>= 0 for std)", name, f.key, keys[i], k, x)
				}
			}
		}
	}
	return n, nil
}

// Widths are the state and action widths the statistics are for.
func (n *Normalization) Widths() (state, action int) {
	if n.Mode == "min_max" {
		return len(n.State.Min), len(n.Action.Min)
	}
	return len(n.State.Mean), len(n.Action.Mean)
}

// affine gives dimension k of the statistics as LeRobot's normalization x ↦ (x − shift)/scale·mul − off:
// mean_std shift mean, scale std + 1e-8, mul 1, off 0; min_max shift min, scale max − min + 1e-8, mul
// 2, off 1. Training's rows went through exactly this arithmetic (apply).
func (n *Normalization) affine(st *FeatureStats, k int) (shift, scale, mul, off float64) {
	if n.Mode == "min_max" {
		return st.Min[k], st.Max[k] - st.Min[k] + normEps, 2, 1
	}
	return st.Mean[k], st.Std[k] + normEps, 1, 0
}

// NormalizeState writes the model's input for the raw state x into dst (both of the state's width).
func (n *Normalization) NormalizeState(dst, x []float64) {
	for k, v := range x {
		shift, scale, mul, off := n.affine(&n.State.FeatureStats, k)
		dst[k] = mul*(v-shift)/scale - off
	}
}

// NormalizeAction writes the model's input for the raw action x into dst: one row normalized as
// training normalized its rows, or with ActionRows r the sum of r normalized rows whose raw sum is x,
// mul·(x − r·shift)/scale − r·off.
func (n *Normalization) NormalizeAction(dst, x []float64) {
	r := float64(max(n.ActionRows, 1))
	for k, v := range x {
		shift, scale, mul, off := n.affine(&n.Action.FeatureStats, k)
		dst[k] = mul*(v-r*shift)/scale - r*off
	}
}

// Jacobians are the derivatives of the normalized state and action with respect to the raw ones, per
// dimension (the mappings are diagonal and affine): mul/scale.
func (n *Normalization) Jacobians() (state, action []float64) {
	d := func(st *FeatureStats, w int) []float64 {
		out := make([]float64, w)
		for k := range out {
			_, scale, mul, _ := n.affine(st, k)
			out[k] = mul / scale
		}
		return out
	}
	zw, aw := n.Widths()
	return d(&n.State.FeatureStats, zw), d(&n.Action.FeatureStats, aw)
}

// apply normalizes rows of the statistics' width back to back in vals, in place, as LeRobot's Normalize
// does: (x − mean)/(std + 1e-8), or 2·(x − min)/(max − min + 1e-8) − 1.
func (n *Normalization) apply(vals []float64, st *FeatureStats) {
	w := len(st.Mean)
	if n.Mode == "min_max" {
		w = len(st.Min)
	}
	for i := range vals {
		shift, scale, mul, off := n.affine(st, i%w)
		vals[i] = mul*(vals[i]-shift)/scale - off
	}
}

// readNormalization reads the statistics of the mapped state and action columns: meta/stats.json
// (every version writes it since v2.0, v3.0 always), or else v2.1's meta/episodes_stats.jsonl
// aggregated over every episode as LeRobot's aggregate_stats does.
func (d *Dataset) readNormalization(ctx context.Context) (*Normalization, error) {
	m := d.opts.Mapping
	n := &Normalization{Mode: m.Normalize, State: NormalizedFeature{Column: m.State}, Action: NormalizedFeature{Column: m.Action}}
	var stats map[string]*FeatureStats
	b, err := d.readAll(ctx, StatsFile)
	switch {
	case err == nil:
		n.Source = StatsFile
		stats, err = parseStats(fmt.Sprintf("%s/%s", d.src, StatsFile), b, []string{m.State, m.Action})
	case errors.Is(err, fs.ErrNotExist):
		b, err2 := d.readAll(ctx, EpisodesStatsFile)
		if errors.Is(err2, fs.ErrNotExist) {
			return nil, fmt.Errorf("lerobot: %s: lerobot.normalize %s needs statistics: no %s or %s", d.src, m.Normalize, StatsFile, EpisodesStatsFile)
		}
		if err2 != nil {
			return nil, err2
		}
		n.Source = EpisodesStatsFile
		stats, err = aggregateEpisodesStats(fmt.Sprintf("%s/%s", d.src, EpisodesStatsFile), b, []string{m.State, m.Action})
	}
	if err != nil {
		return nil, err
	}
	for _, f := range []*NormalizedFeature{&n.State, &n.Action} {
		st := stats[f.Column]
		name := fmt.Sprintf("%s/%s", d.src, n.Source)
		if st == nil {
			return nil, fmt.Errorf("lerobot: %s: no statistics of %q (lerobot.normalize %s)", name, f.Column, m.Normalize)
		}
		want := d.Info.Features[f.Column].Width()
		need := map[string][]float64{"mean": st.Mean, "std": st.Std}
		if m.Normalize == "min_max" {
			need = map[string][]float64{"min": st.Min, "max": st.Max}
		}
		for _, key := range []string{"mean", "std", "min", "max"} {
			if v, ok := need[key]; ok && len(v) != want {
				return nil, fmt.Errorf("lerobot: %s: %s.%s: %d values, want %d (%s features.%s.shape)", name, f.Column, key, len(v), want, InfoFile, f.Column)
			}
		}
		f.FeatureStats = *st
	}
	return n, nil
}

// rawStats is one feature's entry of stats.json: numbers, or lists of them (count is [n]).
type rawStats map[string]json.RawMessage

// featureStats decodes the vector statistics of one entry; a missing key stays nil.
func (r rawStats) featureStats(name, col string) (*FeatureStats, error) {
	st := &FeatureStats{}
	for key, dst := range map[string]*[]float64{"mean": &st.Mean, "std": &st.Std, "min": &st.Min, "max": &st.Max} {
		raw, ok := r[key]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return nil, fmt.Errorf("lerobot: %s: %s.%s: %v, want a list of numbers", name, col, key, err)
		}
		for i, v := range *dst {
			if math.IsNaN(v) || math.IsInf(v, 0) || (key == "std" && v < 0) {
				return nil, fmt.Errorf("lerobot: %s: %s.%s[%d] = %v, want a finite number (>= 0 for std)", name, col, key, i, v)
			}
		}
	}
	if raw, ok := r["count"]; ok {
		var c []int64
		if err := json.Unmarshal(raw, &c); err != nil {
			var one int64
			if err2 := json.Unmarshal(raw, &one); err2 != nil {
				return nil, fmt.Errorf("lerobot: %s: %s.count: %v, want [n]", name, col, err)
			}
			c = []int64{one}
		}
		if len(c) == 1 {
			st.Count = c[0]
		}
	}
	return st, nil
}

// parseStats reads the entries of cols from a stats.json: {feature: {"mean": [...], ...}}.
func parseStats(name string, b []byte, cols []string) (map[string]*FeatureStats, error) {
	var all map[string]rawStats
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("lerobot: %s: %w", name, err)
	}
	out := map[string]*FeatureStats{}
	for _, col := range cols {
		r, ok := all[col]
		if !ok || col == "" {
			continue
		}
		st, err := r.featureStats(name, col)
		if err != nil {
			return nil, err
		}
		out[col] = st
	}
	return out, nil
}

// aggregateEpisodesStats combines the per-episode statistics of cols in a v2.1 episodes_stats.jsonl
// as LeRobot's aggregate_feature_stats does: mean weighted by count, variance by the parallel algorithm
// (Σ count·(std² + (mean − total mean)²) / total count), min of mins, max of maxes.
func aggregateEpisodesStats(name string, b []byte, cols []string) (map[string]*FeatureStats, error) {
	perCol := map[string][]*FeatureStats{}
	type record struct {
		Stats map[string]rawStats `json:"stats"`
	}
	err := decodeJSONLines(name, b, func(line int, _ string, rec *record) error {
		for _, col := range cols {
			r, ok := rec.Stats[col]
			if !ok || col == "" {
				continue
			}
			st, err := r.featureStats(fmt.Sprintf("%s line %d", name, line), col)
			if err != nil {
				return err
			}
			if st.Count <= 0 || len(st.Mean) == 0 || len(st.Std) != len(st.Mean) || len(st.Min) != len(st.Mean) || len(st.Max) != len(st.Mean) {
				return fmt.Errorf("lerobot: %s line %d: %s: want mean, std, min, max of one width and count >= 1", name, line, col)
			}
			perCol[col] = append(perCol[col], st)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := map[string]*FeatureStats{}
	for col, list := range perCol {
		w := len(list[0].Mean)
		agg := &FeatureStats{Mean: make([]float64, w), Std: make([]float64, w), Min: append([]float64(nil), list[0].Min...), Max: append([]float64(nil), list[0].Max...)}
		for i, st := range list {
			if len(st.Mean) != w {
				return nil, fmt.Errorf("lerobot: %s: %s: episode %d has %d values, the first %d", name, col, i, len(st.Mean), w)
			}
			agg.Count += st.Count
			for k := range w {
				agg.Mean[k] += float64(st.Count) * st.Mean[k]
				agg.Min[k], agg.Max[k] = min(agg.Min[k], st.Min[k]), max(agg.Max[k], st.Max[k])
			}
		}
		for k := range w {
			agg.Mean[k] /= float64(agg.Count)
		}
		for _, st := range list {
			for k := range w {
				dm := st.Mean[k] - agg.Mean[k]
				agg.Std[k] += float64(st.Count) * (st.Std[k]*st.Std[k] + dm*dm)
			}
		}
		for k := range w {
			agg.Std[k] = math.Sqrt(agg.Std[k] / float64(agg.Count))
		}
		out[col] = agg
	}
	return out, nil
}
