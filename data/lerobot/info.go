// Package lerobot reads LeRobot datasets (Hugging Face's robot-learning format) for the data.Loader and
// the `data inspect`/`data check` commands, and writes small synthetic ones (make-demo-data).
//
// Two layouts are in use, both described by meta/info.json (fps, features, and the data_path and
// video_path templates):
//
//   - v2.1 (and v2.0): meta/episodes.jsonl lists each episode's index, length and tasks; one parquet file
//     per episode (data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet) and one mp4 per
//     episode and camera.
//   - v3.0: meta/episodes/chunk-XXX/file-XXX.parquet gives each episode's data file, row range
//     (dataset_from_index, dataset_to_index), and per camera its video file and the episode's span in it
//     (videos/<key>/from_timestamp, to_timestamp); data and video files hold many episodes back to back.
//
// A frame's row has timestamp (seconds from the episode's start), frame_index, episode_index, index,
// task_index and the features: vectors (observation.state, action) as parquet lists of floats, images
// (dtype image) as a struct of PNG/JPEG bytes, and videos (dtype video) in the mp4 files, decoded with
// FFmpeg at the frames' timestamps straight to RGB through a pipe (video.go).
//
// Parquet is read with github.com/parquet-go/parquet-go (parquet.go). Mapping says which columns are the
// model's state and action and whether to convert absolute end-effector poses to the official 7-D state
// and delta actions with data's DROID rules (spec §7.4–7.5).
package lerobot

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Files of a dataset's meta folder.
const (
	InfoFile          = "meta/info.json"
	EpisodesJSONLFile = "meta/episodes.jsonl" // v2.x
	TasksJSONLFile    = "meta/tasks.jsonl"    // v2.x
	StatsFile         = "meta/stats.json"
)

// Info is meta/info.json.
type Info struct {
	CodebaseVersion string              `json:"codebase_version"`
	RobotType       string              `json:"robot_type,omitempty"`
	TotalEpisodes   int                 `json:"total_episodes"`
	TotalFrames     int                 `json:"total_frames"`
	TotalTasks      int                 `json:"total_tasks"`
	TotalVideos     int                 `json:"total_videos,omitempty"` // v2.x
	TotalChunks     int                 `json:"total_chunks,omitempty"` // v2.x
	ChunksSize      int                 `json:"chunks_size"`
	DataFilesMB     int                 `json:"data_files_size_in_mb,omitempty"`  // v3.0
	VideoFilesMB    int                 `json:"video_files_size_in_mb,omitempty"` // v3.0
	FPS             float64             `json:"fps"`
	Splits          map[string]string   `json:"splits"`
	DataPath        string              `json:"data_path"`
	VideoPath       *string             `json:"video_path"` // null without videos
	Features        map[string]*Feature `json:"features"`
}

// Feature is one entry of info.json's features.
type Feature struct {
	DType string          `json:"dtype"` // float32, float64, int64, bool, string, image, video
	Shape []int           `json:"shape"`
	Names json.RawMessage `json:"names,omitempty"` // a list, a {"motors": [...]} map or null
	Info  *VideoInfo      `json:"info,omitempty"`  // videos: codec, size, fps (v2.1/v3.0); v2.0 has video_info
}

// VideoInfo is a video feature's "info".
type VideoInfo struct {
	FPS     float64 `json:"video.fps"`
	Height  int     `json:"video.height"`
	Width   int     `json:"video.width"`
	Codec   string  `json:"video.codec"`
	PixFmt  string  `json:"video.pix_fmt"`
	IsDepth bool    `json:"video.is_depth_map"`
}

// Version is the layout: 2 (v2.0, v2.1) or 3 (v3.0).
func (in *Info) Version() int {
	if strings.HasPrefix(in.CodebaseVersion, "v3") {
		return 3
	}
	return 2
}

// NameList returns the feature's per-dimension names, if info.json gives them as a list (or as a map of
// one list, as older datasets do: {"motors": [...]}).
func (f *Feature) NameList() []string {
	if len(f.Names) == 0 {
		return nil
	}
	var list []string
	if json.Unmarshal(f.Names, &list) == nil {
		return list
	}
	var m map[string][]string
	if json.Unmarshal(f.Names, &m) == nil && len(m) == 1 {
		for _, v := range m {
			return v
		}
	}
	return nil
}

// Width is the number of values per frame of a vector feature: the product of its shape.
func (f *Feature) Width() int {
	n := 1
	for _, d := range f.Shape {
		n *= d
	}
	return n
}

// IsCamera reports whether the feature is a video or image.
func (f *Feature) IsCamera() bool { return f.DType == "video" || f.DType == "image" }

// ParseInfo parses and checks meta/info.json. name prefixes errors ("…/meta/info.json").
func ParseInfo(name string, b []byte) (*Info, error) {
	var in Info
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("lerobot: %s: %w", name, err)
	}
	bad := func(field, format string, args ...any) (*Info, error) {
		return nil, fmt.Errorf("lerobot: %s: %s: %s", name, field, fmt.Sprintf(format, args...))
	}
	switch {
	case !strings.HasPrefix(in.CodebaseVersion, "v2.") && !strings.HasPrefix(in.CodebaseVersion, "v3."):
		return bad("codebase_version", "%q, want v2.0, v2.1 or v3.0", in.CodebaseVersion)
	case !(in.FPS > 0):
		return bad("fps", "%v, want > 0", in.FPS)
	case in.DataPath == "":
		return bad("data_path", "missing, want a path template")
	case len(in.Features) == 0:
		return bad("features", "missing or empty")
	case in.ChunksSize <= 0 && in.Version() == 2:
		return bad("chunks_size", "%d, want > 0 (v2 episodes are grouped in chunks of this size)", in.ChunksSize)
	case in.TotalEpisodes < 0 || in.TotalFrames < 0:
		return bad("total_episodes", "%d episodes and %d frames, want >= 0", in.TotalEpisodes, in.TotalFrames)
	}
	for _, key := range in.FeatureKeys() {
		f := in.Features[key]
		if f == nil {
			return bad("features."+key, "null, want {dtype, shape}")
		}
		switch f.DType {
		case "video":
			if in.VideoPath == nil || *in.VideoPath == "" {
				return bad("video_path", "missing, but features.%s is a video", key)
			}
		case "image", "float32", "float64", "int64", "int32", "bool", "string":
		default:
			return bad("features."+key+".dtype", "%q, want float32, float64, int64, int32, bool, string, image or video", f.DType)
		}
		for _, d := range f.Shape {
			if d <= 0 {
				return bad("features."+key+".shape", "%v, want positive sizes", f.Shape)
			}
		}
	}
	return &in, nil
}

// FeatureKeys returns the feature names, sorted.
func (in *Info) FeatureKeys() []string {
	keys := make([]string, 0, len(in.Features))
	for k := range in.Features {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Cameras returns the keys of the video and image features, sorted.
func (in *Info) Cameras() []string {
	var out []string
	for _, k := range in.FeatureKeys() {
		if in.Features[k].IsCamera() {
			out = append(out, k)
		}
	}
	return out
}

// FormatPath fills a path template of info.json, a Python format string such as
// "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet": each {name} or {name:0Nd} is
// replaced by vars[name] (an int or a string).
func FormatPath(tmpl string, vars map[string]any) (string, error) {
	var b strings.Builder
	for rest := tmpl; ; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("lerobot: path template %q: unclosed {", tmpl)
		}
		b.WriteString(rest[:i])
		field := rest[i+1 : i+j]
		rest = rest[i+j+1:]
		name, spec, _ := strings.Cut(field, ":")
		v, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("lerobot: path template %q: unknown field {%s}", tmpl, name)
		}
		switch v := v.(type) {
		case string:
			b.WriteString(v)
		case int:
			s := strconv.Itoa(v)
			if spec != "" {
				w, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(spec, "0"), "d"))
				if err != nil || !strings.HasSuffix(spec, "d") {
					return "", fmt.Errorf("lerobot: path template %q: format %q, want {name:0Nd}", tmpl, spec)
				}
				for len(s) < w {
					s = "0" + s
				}
			}
			b.WriteString(s)
		default:
			panic(fmt.Sprintf("lerobot: FormatPath: %s is a %T", name, v))
		}
	}
}
