package lerobot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// EpisodeMeta is one episode as the meta folder describes it.
type EpisodeMeta struct {
	Index    int                  `json:"episode_index"`
	Length   int                  `json:"length"`
	Tasks    []string             `json:"tasks,omitempty"`
	DataFile string               `json:"data_file"`           // the parquet file holding its rows
	From, To int                  `json:"-"`                   // v3.0: global row range [From, To) (dataset_from_index, dataset_to_index)
	Videos   map[string]VideoSpan `json:"videos,omitempty"`    // per video feature
	MetaFile string               `json:"meta_file,omitempty"` // where this record came from
}

// VideoSpan is where an episode's frames of one camera lie: a file and, in v3.0, the episode's time
// span in it (v2.x: one file per episode starting at 0).
type VideoSpan struct {
	File string  `json:"file"`
	From float64 `json:"from_timestamp"`
	To   float64 `json:"to_timestamp,omitempty"`
}

// readEpisodesV2 reads meta/episodes.jsonl: one {"episode_index", "tasks", "length"} object per line.
func readEpisodesV2(ctx context.Context, d *Dataset) ([]EpisodeMeta, error) {
	b, err := d.readAll(ctx, EpisodesJSONLFile)
	if err != nil {
		return nil, err
	}
	type record struct {
		Index  *int     `json:"episode_index"`
		Length *int     `json:"length"`
		Tasks  []string `json:"tasks"`
	}
	var out []EpisodeMeta
	err = decodeJSONLines(d.src.String()+"/"+EpisodesJSONLFile, b, func(line int, text string, rec *record) error {
		var err error
		if rec.Index == nil || rec.Length == nil || *rec.Index < 0 || *rec.Length < 0 {
			return fmt.Errorf("lerobot: %s/%s line %d: want non-negative episode_index and length, got %s", d.src, EpisodesJSONLFile, line, text)
		}
		e := EpisodeMeta{Index: *rec.Index, Length: *rec.Length, Tasks: rec.Tasks, MetaFile: EpisodesJSONLFile}
		chunk := e.Index / d.Info.ChunksSize
		vars := map[string]any{"episode_chunk": chunk, "episode_index": e.Index, "chunk_index": chunk}
		if e.DataFile, err = FormatPath(d.Info.DataPath, vars); err != nil {
			return fmt.Errorf("%w (in %s/%s: data_path)", err, d.src, InfoFile)
		}
		for _, key := range d.Info.videoKeys() {
			vars["video_key"] = key
			file, err := FormatPath(*d.Info.VideoPath, vars)
			if err != nil {
				return fmt.Errorf("%w (in %s/%s: video_path)", err, d.src, InfoFile)
			}
			if e.Videos == nil {
				e.Videos = map[string]VideoSpan{}
			}
			e.Videos[key] = VideoSpan{File: file}
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readEpisodesV3 reads every meta/episodes/chunk-XXX/file-XXX.parquet, in chunk and file order, until
// the first missing file of a chunk (no listing: works on any data.Source).
func readEpisodesV3(ctx context.Context, d *Dataset) ([]EpisodeMeta, error) {
	var out []EpisodeMeta
	for chunk := 0; ; chunk++ {
		found := 0
		for file := 0; ; file++ {
			name := fmt.Sprintf("meta/episodes/chunk-%03d/file-%03d.parquet", chunk, file)
			t, err := d.openTable(ctx, name)
			if errors.Is(err, fs.ErrNotExist) {
				break
			}
			if err != nil {
				return nil, err
			}
			eps, err := episodesFromTable(d, t, name)
			if err != nil {
				return nil, err
			}
			out = append(out, eps...)
			found++
		}
		if found == 0 {
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("lerobot: %s: no meta/episodes/chunk-000/file-000.parquet (a v3.0 dataset lists its episodes there)", d.src)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

// episodesFromTable reads one v3.0 episodes parquet file.
func episodesFromTable(d *Dataset, t *table, name string) ([]EpisodeMeta, error) {
	ints := func(col string) ([]int64, error) { return t.ints(col) }
	idx, err := ints("episode_index")
	if err != nil {
		return nil, err
	}
	cols := map[string][]int64{}
	for _, c := range []string{"length", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index"} {
		if cols[c], err = ints(c); err != nil {
			return nil, err
		}
	}
	var tasks [][]byte
	var toff []int
	if t.has("tasks") {
		if tasks, toff, err = t.blobs("tasks"); err != nil {
			return nil, err
		}
	}
	type vcols struct {
		chunk, file []int64
		from, to    []float64
	}
	vids := map[string]vcols{}
	for _, key := range d.Info.videoKeys() {
		var v vcols
		pre := "videos/" + key + "/"
		if v.chunk, err = ints(pre + "chunk_index"); err == nil {
			if v.file, err = ints(pre + "file_index"); err == nil {
				if v.from, err = t.scalars(pre + "from_timestamp"); err == nil {
					v.to, err = t.scalars(pre + "to_timestamp")
				}
			}
		}
		if err != nil {
			return nil, err
		}
		vids[key] = v
	}
	out := make([]EpisodeMeta, len(idx))
	for i := range out {
		e := EpisodeMeta{Index: int(idx[i]), Length: int(cols["length"][i]), MetaFile: name,
			From: int(cols["dataset_from_index"][i]), To: int(cols["dataset_to_index"][i])}
		if e.Index < 0 || e.Length < 0 || e.To-e.From != e.Length {
			return nil, fmt.Errorf("lerobot: %s/%s: row %d: episode_index %d, length %d, dataset_from_index %d, dataset_to_index %d: want to − from = length >= 0",
				d.src, name, i, e.Index, e.Length, e.From, e.To)
		}
		if tasks != nil {
			for _, b := range tasks[toff[i]:toff[i+1]] {
				e.Tasks = append(e.Tasks, string(b))
			}
		}
		vars := map[string]any{"chunk_index": int(cols["data/chunk_index"][i]), "file_index": int(cols["data/file_index"][i])}
		if e.DataFile, err = FormatPath(d.Info.DataPath, vars); err != nil {
			return nil, fmt.Errorf("%w (in %s/%s: data_path)", err, d.src, InfoFile)
		}
		for key, v := range vids {
			vv := map[string]any{"video_key": key, "chunk_index": int(v.chunk[i]), "file_index": int(v.file[i])}
			file, err := FormatPath(*d.Info.VideoPath, vv)
			if err != nil {
				return nil, fmt.Errorf("%w (in %s/%s: video_path)", err, d.src, InfoFile)
			}
			if e.Videos == nil {
				e.Videos = map[string]VideoSpan{}
			}
			e.Videos[key] = VideoSpan{File: file, From: v.from[i], To: v.to[i]}
		}
		out[i] = e
	}
	return out, nil
}

// videoKeys are the video features, sorted.
func (in *Info) videoKeys() []string {
	var out []string
	for _, k := range in.FeatureKeys() {
		if in.Features[k].DType == "video" {
			out = append(out, k)
		}
	}
	return out
}

// splitRange parses info.json's splits entry "a:b" (episode indices a ≤ i < b).
func splitRange(in *Info, split string) (lo, hi int, err error) {
	if len(in.Splits) == 0 && split == "train" {
		return 0, 1 << 62, nil // every episode
	}
	s, ok := in.Splits[split]
	if !ok {
		names := make([]string, 0, len(in.Splits))
		for k := range in.Splits {
			names = append(names, k)
		}
		sort.Strings(names)
		return 0, 0, fmt.Errorf("lerobot: %s: splits has no %q, have %v", InfoFile, split, names)
	}
	a, b, ok := strings.Cut(s, ":")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || lo < 0 || hi < lo {
		return 0, 0, fmt.Errorf("lerobot: %s: splits.%s = %q, want \"first:end\" episode indices", InfoFile, split, s)
	}
	return lo, hi, nil
}

// decodeJSONLines decodes each non-blank line of the JSON Lines file b (named name in errors) into a new T
// and passes it to fn with its 1-based line number and text. Lines may be up to 64 MiB.
func decodeJSONLines[T any](name string, b []byte, fn func(line int, text string, rec *T) error) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<16), 1<<26)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		rec := new(T)
		if err := json.Unmarshal([]byte(text), rec); err != nil {
			return fmt.Errorf("lerobot: %s line %d: %w", name, line, err)
		}
		if err := fn(line, text, rec); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("lerobot: %s: %w", name, err)
	}
	return nil
}
