package lerobot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/vjepa-vk/vjepa-vk/data"
)

// Demo camera keys and feature names.
const (
	DemoVideoKey = "observation.images.front"
	DemoImageKey = "observation.images.wrist"
	demoTask     = "put the red cube on the blue plate"
)

// DemoConfig sizes a synthetic LeRobot dataset of data's demo scene (the episodes of
// data.WriteDemoDataset): a 6-D joint state, the 7-D end-effector pose, a 4-D Cartesian action, a video
// camera and optionally an image camera.
type DemoConfig struct {
	Version  string // "v2.1" or "v3.0"
	Episodes int
	Steps    int // every sixth episode is cut to 3/4, as in data's demo
	Seed     uint64
	// Codec is the video codec: av1 (libsvtav1, LeRobot's default), or h264 (libx264).
	Codec         string
	Width, Height int // frame size: 320×180 (the renderer's) or 160×90 (halved)
	// EpisodesPerFile is how many episodes a v3.0 data and video file holds; default 3.
	EpisodesPerFile int
	// ImageCamera also stores the wrist camera as a dtype image feature: JPEG bytes in the parquet.
	ImageCamera bool
	FFmpeg      string      // "" finds ffmpeg on PATH
	Tables      TableWriter // nil writes parquet with parquet-go; tests pass other writers
}

// DefaultDemoConfig is a v3.0 dataset like configs/lerobot-demo.yaml trains on.
func DefaultDemoConfig() DemoConfig {
	return DemoConfig{Version: "v3.0", Episodes: 6, Steps: 40, Seed: 1, Codec: "av1", Width: 160, Height: 90,
		EpisodesPerFile: 3, ImageCamera: true}
}

// FrameRow is one row of a data parquet file of the demo.
type FrameRow struct {
	State        []float32  `parquet:"observation.state,list"`   // [6]: 5 joint angles and the gripper
	EEPose       []float32  `parquet:"observation.ee_pose,list"` // [7]: x y z roll pitch yaw gripper
	Action       []float32  `parquet:"action,list"`              // [4]: Δx Δy Δz Δgripper to the next frame
	Wrist        *ImageCell `parquet:"observation.images.wrist,optional"`
	Timestamp    float32    `parquet:"timestamp"`
	FrameIndex   int64      `parquet:"frame_index"`
	EpisodeIndex int64      `parquet:"episode_index"`
	Index        int64      `parquet:"index"`
	TaskIndex    int64      `parquet:"task_index"`
}

// ImageCell is Hugging Face datasets' Image feature on disk.
type ImageCell struct {
	Bytes []byte `parquet:"bytes"`
	Path  string `parquet:"path"`
}

// EpisodeRow is one row of a v3.0 meta/episodes parquet file of the demo.
type EpisodeRow struct {
	EpisodeIndex int64    `parquet:"episode_index"`
	Tasks        []string `parquet:"tasks,list"`
	Length       int64    `parquet:"length"`
	DataChunk    int64    `parquet:"data/chunk_index"`
	DataFile     int64    `parquet:"data/file_index"`
	From         int64    `parquet:"dataset_from_index"`
	To           int64    `parquet:"dataset_to_index"`
	VideoChunk   int64    `parquet:"videos/observation.images.front/chunk_index"`
	VideoFile    int64    `parquet:"videos/observation.images.front/file_index"`
	VideoFrom    float64  `parquet:"videos/observation.images.front/from_timestamp"`
	VideoTo      float64  `parquet:"videos/observation.images.front/to_timestamp"`
	MetaChunk    int64    `parquet:"meta/episodes/chunk_index"`
	MetaFile     int64    `parquet:"meta/episodes/file_index"`
}

// TaskRow is one row of v3.0's meta/tasks.parquet.
type TaskRow struct {
	Task      string `parquet:"task"`
	TaskIndex int64  `parquet:"task_index"`
}

// TableWriter writes the demo's parquet files.
type TableWriter interface {
	WriteFrames(path string, rows []FrameRow) error
	WriteEpisodes(path string, rows []EpisodeRow) error
	WriteTasks(path string, rows []TaskRow) error
}

// ParquetGo writes the tables with github.com/parquet-go/parquet-go.
type ParquetGo struct{}

func (ParquetGo) WriteFrames(path string, rows []FrameRow) error     { return writeParquet(path, rows) }
func (ParquetGo) WriteEpisodes(path string, rows []EpisodeRow) error { return writeParquet(path, rows) }
func (ParquetGo) WriteTasks(path string, rows []TaskRow) error       { return writeParquet(path, rows) }

func writeParquet[T any](path string, rows []T) error {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[T](&buf, parquet.Compression(&parquet.Snappy))
	if _, err := w.Write(rows); err != nil {
		return fmt.Errorf("lerobot: write %s: %w", path, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("lerobot: write %s: %w", path, err)
	}
	return writeFile(path, buf.Bytes())
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("lerobot: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("lerobot: %w", err)
	}
	return nil
}

// demoEpisode is one episode's rows and frames before writing.
type demoEpisode struct {
	rows   []FrameRow
	frames [][]byte // [T] packed RGB [H, W, 3] of the video camera
}

// WriteDemo writes a synthetic LeRobot dataset into dir: meta/info.json, the episode list, parquet data
// and mp4 videos encoded by FFmpeg as LeRobot encodes them (yuv420p, a key frame every 2 frames).
func WriteDemo(dir string, cfg DemoConfig) error {
	if cfg.Episodes < 1 || cfg.Steps < 8 || (cfg.Version != "v2.1" && cfg.Version != "v3.0") {
		return fmt.Errorf("lerobot: demo: want version v2.1 or v3.0, episodes >= 1, steps >= 8; got %q, %d, %d", cfg.Version, cfg.Episodes, cfg.Steps)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		cfg.Width, cfg.Height = data.DemoFrameWidth, data.DemoFrameHeight
	}
	if cfg.EpisodesPerFile <= 0 {
		cfg.EpisodesPerFile = 3
	}
	if cfg.Tables == nil {
		cfg.Tables = ParquetGo{}
	}
	if _, err := videoCodecArgs(cfg.Codec); err != nil {
		return err
	}
	fps := float64(data.DemoFPS)
	scene := data.NewDemoRenderer()
	dcfg := data.DefaultDemoConfig()
	dcfg.Steps, dcfg.Seed = cfg.Steps, cfg.Seed
	eps := make([]demoEpisode, cfg.Episodes)
	index := int64(0)
	for e := range eps {
		tr := data.NewDemoTrajectory(dcfg, e)
		states := tr.States()
		ep := &eps[e]
		for t, s := range states {
			j := tr.Joints(t)
			row := FrameRow{
				State:     []float32{float32(j[0]), float32(j[1]), float32(j[2]), float32(j[3]), float32(j[4]), float32(s[6])},
				EEPose:    make([]float32, 7),
				Action:    make([]float32, 4),
				Timestamp: float32(float64(t) / fps), FrameIndex: int64(t), EpisodeIndex: int64(e), Index: index,
			}
			for k := range 7 {
				row.EEPose[k] = float32(s[k])
			}
			if t+1 < len(states) {
				n := states[t+1]
				row.Action = []float32{float32(n[0] - s[0]), float32(n[1] - s[1]), float32(n[2] - s[2]), float32(n[6] - s[6])}
			}
			ep.frames = append(ep.frames, packRGB(scene.Render(0, tr, t), cfg.Width, cfg.Height))
			if cfg.ImageCamera {
				var jb bytes.Buffer
				if err := jpeg.Encode(&jb, downscale(scene.Render(2, tr, t), cfg.Width, cfg.Height), &jpeg.Options{Quality: 85}); err != nil {
					return fmt.Errorf("lerobot: demo: %w", err)
				}
				row.Wrist = &ImageCell{Bytes: jb.Bytes(), Path: fmt.Sprintf("frame_%06d.jpg", t)}
			}
			ep.rows = append(ep.rows, row)
			index++
		}
	}
	info := demoInfo(cfg, fps, int(index))
	if cfg.Version == "v2.1" {
		if err := writeDemoV2(dir, cfg, eps, fps); err != nil {
			return err
		}
	} else if err := writeDemoV3(dir, cfg, eps, fps); err != nil {
		return err
	}
	var all []FrameRow
	for _, ep := range eps {
		all = append(all, ep.rows...)
	}
	if err := writeJSON(filepath.Join(dir, StatsFile), demoStats(all)); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, InfoFile), info)
}

func writeDemoV2(dir string, cfg DemoConfig, eps []demoEpisode, fps float64) error {
	var episodes, tasks strings.Builder
	tasks.WriteString(`{"task_index": 0, "task": "` + demoTask + `"}` + "\n")
	for e, ep := range eps {
		fmt.Fprintf(&episodes, `{"episode_index": %d, "tasks": [%q], "length": %d}`+"\n", e, demoTask, len(ep.rows))
		name := fmt.Sprintf("data/chunk-%03d/episode_%06d.parquet", e/1000, e)
		if err := cfg.Tables.WriteFrames(filepath.Join(dir, name), ep.rows); err != nil {
			return err
		}
		video := fmt.Sprintf("videos/chunk-%03d/%s/episode_%06d.mp4", e/1000, DemoVideoKey, e)
		if err := encodeVideo(cfg, filepath.Join(dir, video), ep.frames, fps); err != nil {
			return err
		}
	}
	if err := writeFile(filepath.Join(dir, EpisodesJSONLFile), []byte(episodes.String())); err != nil {
		return err
	}
	var stats bytes.Buffer
	for e, ep := range eps {
		line, err := json.Marshal(map[string]any{"episode_index": e, "stats": demoStats(ep.rows)})
		if err != nil {
			return err
		}
		stats.Write(append(line, '\n'))
	}
	if err := writeFile(filepath.Join(dir, EpisodesStatsFile), stats.Bytes()); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, TasksJSONLFile), []byte(tasks.String()))
}

func writeDemoV3(dir string, cfg DemoConfig, eps []demoEpisode, fps float64) error {
	var meta []EpisodeRow
	from := int64(0)
	for file := 0; file*cfg.EpisodesPerFile < len(eps); file++ {
		group := eps[file*cfg.EpisodesPerFile : min((file+1)*cfg.EpisodesPerFile, len(eps))]
		var rows []FrameRow
		var frames [][]byte
		videoAt := 0.0
		for k, ep := range group {
			e := file*cfg.EpisodesPerFile + k
			n := int64(len(ep.rows))
			dur := float64(n) / fps
			meta = append(meta, EpisodeRow{EpisodeIndex: int64(e), Tasks: []string{demoTask}, Length: n,
				DataFile: int64(file), From: from, To: from + n, VideoFile: int64(file), VideoFrom: videoAt, VideoTo: videoAt + dur})
			rows = append(rows, ep.rows...)
			frames = append(frames, ep.frames...)
			from += n
			videoAt += dur
		}
		if err := cfg.Tables.WriteFrames(filepath.Join(dir, fmt.Sprintf("data/chunk-000/file-%03d.parquet", file)), rows); err != nil {
			return err
		}
		video := fmt.Sprintf("videos/%s/chunk-000/file-%03d.mp4", DemoVideoKey, file)
		if err := encodeVideo(cfg, filepath.Join(dir, video), frames, fps); err != nil {
			return err
		}
	}
	if err := cfg.Tables.WriteEpisodes(filepath.Join(dir, "meta/episodes/chunk-000/file-000.parquet"), meta); err != nil {
		return err
	}
	return cfg.Tables.WriteTasks(filepath.Join(dir, "meta/tasks.parquet"), []TaskRow{{Task: demoTask}})
}

// demoStats are the statistics of the demo's vector features over rows, in stats.json's layout:
// per dimension mean, population std, min and max, and count [n], as LeRobot's compute_episode_stats
// gives them (which also covers images and the index columns; nothing here reads those).
func demoStats(rows []FrameRow) map[string]any {
	out := map[string]any{}
	for col, get := range map[string]func(r FrameRow) []float32{
		"observation.state":   func(r FrameRow) []float32 { return r.State },
		"observation.ee_pose": func(r FrameRow) []float32 { return r.EEPose },
		"action":              func(r FrameRow) []float32 { return r.Action },
	} {
		w := len(get(rows[0]))
		mean, std, lo, hi := make([]float64, w), make([]float64, w), make([]float64, w), make([]float64, w)
		for k := range w {
			lo[k], hi[k] = math.Inf(1), math.Inf(-1)
			for _, r := range rows {
				v := float64(get(r)[k])
				mean[k] += v
				lo[k], hi[k] = min(lo[k], v), max(hi[k], v)
			}
			mean[k] /= float64(len(rows))
			for _, r := range rows {
				d := float64(get(r)[k]) - mean[k]
				std[k] += d * d
			}
			std[k] = math.Sqrt(std[k] / float64(len(rows)))
		}
		out[col] = map[string]any{"mean": mean, "std": std, "min": lo, "max": hi, "count": []int{len(rows)}}
	}
	return out
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	return writeFile(path, append(b, '\n'))
}

// demoInfo is the dataset's meta/info.json.
func demoInfo(cfg DemoConfig, fps float64, frames int) map[string]any {
	codec := map[string]string{"av1": "av1", "h264": "h264"}[cfg.Codec]
	scalar := func(dt string) map[string]any { return map[string]any{"dtype": dt, "shape": []int{1}, "names": nil} }
	camera := func(dt string) map[string]any {
		f := map[string]any{"dtype": dt, "shape": []int{cfg.Height, cfg.Width, 3}, "names": []string{"height", "width", "channels"}}
		if dt == "video" {
			f["info"] = map[string]any{"video.fps": fps, "video.height": cfg.Height, "video.width": cfg.Width, "video.channels": 3,
				"video.codec": codec, "video.pix_fmt": "yuv420p", "video.is_depth_map": false, "has_audio": false}
		}
		return f
	}
	features := map[string]any{
		"observation.state": map[string]any{"dtype": "float32", "shape": []int{6},
			"names": []string{"joint_0", "joint_1", "joint_2", "joint_3", "joint_4", "gripper"}},
		"observation.ee_pose": map[string]any{"dtype": "float32", "shape": []int{7},
			"names": []string{"x", "y", "z", "roll", "pitch", "yaw", "gripper"}},
		"action":        map[string]any{"dtype": "float32", "shape": []int{4}, "names": []string{"dx", "dy", "dz", "dgripper"}},
		DemoVideoKey:    camera("video"),
		"timestamp":     scalar("float32"),
		"frame_index":   scalar("int64"),
		"episode_index": scalar("int64"),
		"index":         scalar("int64"),
		"task_index":    scalar("int64"),
	}
	if cfg.ImageCamera {
		features[DemoImageKey] = camera("image")
	}
	info := map[string]any{
		"codebase_version": cfg.Version, "robot_type": "vjepa_vk_demo", "total_episodes": cfg.Episodes,
		"total_frames": frames, "total_tasks": 1, "chunks_size": 1000, "fps": int(fps),
		"splits": map[string]string{"train": fmt.Sprintf("0:%d", cfg.Episodes)}, "features": features,
	}
	if cfg.Version == "v2.1" {
		info["total_videos"] = cfg.Episodes
		info["total_chunks"] = 1
		info["data_path"] = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
		info["video_path"] = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
	} else {
		info["data_files_size_in_mb"] = 100
		info["video_files_size_in_mb"] = 200
		info["data_path"] = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
		info["video_path"] = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
	}
	return info
}

// videoCodecArgs are LeRobot's encoder settings (encode_video_frames: libsvtav1, yuv420p, g=2, crf=30),
// or the H.264 equivalent.
func videoCodecArgs(codec string) ([]string, error) {
	switch codec {
	case "av1":
		return []string{"-c:v", "libsvtav1", "-pix_fmt", "yuv420p", "-g", "2", "-crf", "30"}, nil
	case "h264":
		return []string{"-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "2", "-crf", "23"}, nil
	}
	return nil, fmt.Errorf("lerobot: demo: codec %q, want av1 or h264", codec)
}

// encodeVideo pipes packed RGB frames into FFmpeg and writes an mp4 at fps.
func encodeVideo(cfg DemoConfig, path string, frames [][]byte, fps float64) error {
	codec, err := videoCodecArgs(cfg.Codec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("lerobot: %w", err)
	}
	bin := cfg.FFmpeg
	if bin == "" {
		bin = "ffmpeg"
	}
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
		"-s", fmt.Sprintf("%dx%d", cfg.Width, cfg.Height), "-r", strconv.FormatFloat(fps, 'g', -1, 64), "-i", "pipe:0"}
	args = append(append(args, codec...), "-an", path)
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(bytes.Join(frames, nil))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("lerobot: encode %s with %s (%s): %w: %s", path, bin, cfg.Codec, err, lastLines(stderr.String(), 3))
	}
	return nil
}

// downscale box-filters img to w×h when it is an integer multiple of it, or returns it as it is.
func downscale(img *image.RGBA, w, h int) image.Image {
	b := img.Bounds()
	if b.Dx() == w && b.Dy() == h {
		return img
	}
	f := b.Dx() / w
	if f*w != b.Dx() || f*h != b.Dy() {
		panic(fmt.Sprintf("lerobot: demo: frame %dx%d is not a multiple of %dx%d", b.Dx(), b.Dy(), w, h))
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			var sum [3]int
			for dy := range f {
				for dx := range f {
					p := img.PixOffset(b.Min.X+x*f+dx, b.Min.Y+y*f+dy)
					for c := range 3 {
						sum[c] += int(img.Pix[p+c])
					}
				}
			}
			q := out.PixOffset(x, y)
			for c := range 3 {
				out.Pix[q+c] = uint8((sum[c] + f*f/2) / (f * f))
			}
			out.Pix[q+3] = 255
		}
	}
	return out
}

// packRGB returns img (downscaled to w×h) as packed RGB bytes.
func packRGB(img *image.RGBA, w, h int) []byte {
	small := downscale(img, w, h).(*image.RGBA)
	out := make([]byte, 0, 3*w*h)
	for y := range h {
		row := small.Pix[y*small.Stride:]
		for x := range w {
			out = append(out, row[4*x], row[4*x+1], row[4*x+2])
		}
	}
	return out
}
