package lerobot

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// TimestampTolerance is how far (seconds) a decoded frame's timestamp may be from the one asked for:
// LeRobot's default tolerance_s (decode_video_frames), so a clip is accepted exactly when LeRobot's own
// loader accepts it.
const TimestampTolerance = 1e-4

// Frame is one decoded video frame: packed 8-bit RGB [H, W, 3].
type Frame struct {
	W, H int
	RGB  []byte
}

// VideoRequest asks for the frames of one clip: Times (seconds in the file's timeline, increasing) of
// the video file Path, whose nominal rate is FPS (for the seek margin).
type VideoRequest struct {
	Path  string
	Times []float64
	FPS   float64
}

// VideoDecoder decodes frames of video files with FFmpeg (Debian's ffmpeg: libdav1d for AV1, its own
// H.264 decoder). One process serves one or several requests: each is an input of its own, seeked to
// the key frame before its first timestamp and decoded up to its last, and an output of its own, which
// passes only the asked-for frames through a select filter and writes them as binary PPM (RGB with a
// tiny size header, so a wrong size in info.json cannot shear the pixels) to a pipe of its own.
//
// Starting FFmpeg costs more than decoding a clip: Debian's build links 216 shared libraries, and the
// dynamic loader's relocations and the kernel's mappings take about 0.2 CPU-seconds per process (perf:
// half in ld.so's symbol lookups), against 10–20 ms to decode the ~60 frames of a 16-frame clip at
// 320×180. DecodeAll therefore puts many clips in one process.
type VideoDecoder struct {
	FFmpeg  string // the ffmpeg executable; "" looks up "ffmpeg" on PATH
	Threads int    // decoder threads per input; 0 = 1, since the loader runs one decode per worker
}

// DecodeError is a video that could not give the frames asked for.
type DecodeError struct {
	File   string
	Times  []float64 // seconds in the file's timeline
	Got    int       // frames decoded
	Detail string    // FFmpeg's last messages
}

func (e *DecodeError) Error() string {
	msg := fmt.Sprintf("lerobot: decode %s: %d of %d frames at t=%s", e.File, e.Got, len(e.Times), formatTimes(e.Times))
	if e.Got < len(e.Times) && e.Detail == "" {
		msg += fmt.Sprintf(" (no frame within %gs of the rest: the video is shorter than the parquet says, or its timestamps differ)", TimestampTolerance)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

func formatTimes(ts []float64) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = strconv.FormatFloat(t, 'f', -1, 64)
	}
	if len(parts) > 6 {
		parts = append(parts[:3], "…", parts[len(parts)-1])
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// firstOutputFD is the file descriptor of the first output pipe in the FFmpeg process: the first of
// exec.Cmd.ExtraFiles.
const firstOutputFD = 3

// Args are the FFmpeg arguments that decode reqs, request i's frames to file descriptor 3+i.
func (d *VideoDecoder) Args(reqs []VideoRequest) []string {
	threads := strconv.Itoa(max(d.Threads, 1))
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error",
		// Keep the files' timestamps, so select's t is the frame's time as LeRobot computes it (pts·time_base).
		"-copyts", "-filter_threads", "1"}
	for _, r := range reqs {
		args = append(args, "-threads", threads)
		if start := r.Times[0] - 0.5/r.FPS; start > 0 {
			// Input seek: demuxing starts at the key frame before start; frames before it are never decoded.
			args = append(args, "-ss", strconv.FormatFloat(start, 'f', 6, 64))
		}
		args = append(args, "-i", r.Path)
	}
	for i, r := range reqs {
		var sel strings.Builder
		for k, t := range r.Times {
			if k > 0 {
				sel.WriteByte('+')
			}
			fmt.Fprintf(&sel, "lt(abs(t-%s),%g)", strconv.FormatFloat(t, 'g', 17, 64), TimestampTolerance)
		}
		// -frames:v ends the output at its last frame, and with it the decoding of its input.
		args = append(args, "-map", strconv.Itoa(i)+":v:0", "-vf", "select='"+sel.String()+"'", "-fps_mode", "passthrough",
			"-frames:v", strconv.Itoa(len(r.Times)), "-f", "image2pipe", "-c:v", "ppm", "pipe:"+strconv.Itoa(firstOutputFD+i))
	}
	return args
}

// Decode returns the frames of the video file path at times (seconds in the file's timeline,
// increasing). fps is the video's nominal rate (for the seek margin). A file FFmpeg cannot read, or one
// without a frame within TimestampTolerance of each time, gives a *DecodeError.
func (d *VideoDecoder) Decode(ctx context.Context, path string, times []float64, fps float64) ([]Frame, error) {
	frames, errs := d.DecodeAll(ctx, []VideoRequest{{Path: path, Times: times, FPS: fps}})
	return frames[0], errs[0]
}

// DecodeAll decodes every request with one FFmpeg process: frames[i] are request i's frames, errs[i]
// its error (a *DecodeError, or the context's). A request that fails in company is decoded again on its
// own, so that its error (and FFmpeg's messages) are its own and the others keep their frames.
func (d *VideoDecoder) DecodeAll(ctx context.Context, reqs []VideoRequest) (frames [][]Frame, errs []error) {
	frames, errs = make([][]Frame, len(reqs)), make([]error, len(reqs))
	var todo []VideoRequest
	var at []int
	for i, r := range reqs {
		if len(r.Times) > 0 {
			todo, at = append(todo, r), append(at, i)
		}
	}
	if len(todo) == 0 {
		return frames, errs
	}
	got, gotErrs := d.run(ctx, todo)
	for k, i := range at {
		frames[i], errs[i] = got[k], gotErrs[k]
		if errs[i] != nil && len(todo) > 1 && ctx.Err() == nil {
			alone, aloneErrs := d.run(ctx, todo[k:k+1])
			frames[i], errs[i] = alone[0], aloneErrs[0]
		}
	}
	return frames, errs
}

// run decodes reqs (each with at least one time) in one FFmpeg process.
func (d *VideoDecoder) run(ctx context.Context, reqs []VideoRequest) ([][]Frame, []error) {
	frames, errs := make([][]Frame, len(reqs)), make([]error, len(reqs))
	fail := func(err error) ([][]Frame, []error) {
		for i, r := range reqs {
			frames[i], errs[i] = nil, fmt.Errorf("lerobot: decode %s: %w", r.Path, err)
		}
		return frames, errs
	}
	bin := d.FFmpeg
	if bin == "" {
		bin = "ffmpeg"
	}
	cmd := exec.CommandContext(ctx, bin, d.Args(reqs)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	readers := make([]*os.File, len(reqs))
	closeAll := func() {
		for _, f := range append(readers, cmd.ExtraFiles...) {
			if f != nil {
				f.Close()
			}
		}
	}
	for i := range reqs {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return fail(err)
		}
		readers[i] = r
		cmd.ExtraFiles = append(cmd.ExtraFiles, w)
	}
	if err := cmd.Start(); err != nil {
		closeAll()
		if errors.Is(err, exec.ErrNotFound) {
			return fail(fmt.Errorf("%w (install FFmpeg: apt-get install ffmpeg, or run ./build.sh)", err))
		}
		return fail(err)
	}
	for _, w := range cmd.ExtraFiles {
		w.Close() // the child holds its own copies; EOF comes when it closes them
	}
	readErrs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			frames[i], readErrs[i] = readPPMs(bufio.NewReaderSize(r, 1<<18), len(reqs[i].Times))
			io.Copy(io.Discard, r)
		}()
	}
	wg.Wait()
	werr := cmd.Wait()
	if err := ctx.Err(); err != nil {
		for i := range reqs {
			frames[i], errs[i] = nil, err
		}
		return frames, errs
	}
	for i, r := range reqs {
		de := &DecodeError{File: r.Path, Times: r.Times, Got: len(frames[i])}
		switch {
		case werr != nil:
			de.Detail = lastLines(stderr.String(), 3)
			if de.Detail == "" {
				de.Detail = werr.Error()
			}
		case readErrs[i] != nil:
			de.Detail = readErrs[i].Error()
		case len(frames[i]) < len(r.Times):
		default:
			continue
		}
		frames[i], errs[i] = nil, de
	}
	return frames, errs
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// readPPMs reads up to n binary PPM (P6, maxval 255) images back to back.
func readPPMs(r *bufio.Reader, n int) ([]Frame, error) {
	var frames []Frame
	for len(frames) < n {
		var magic string
		var w, h, maxv int
		if _, err := fmt.Fscan(r, &magic, &w, &h, &maxv); err != nil {
			if err == io.EOF {
				return frames, nil
			}
			return frames, fmt.Errorf("ppm header of frame %d: %w", len(frames), err)
		}
		if magic != "P6" || w <= 0 || h <= 0 || maxv != 255 {
			return frames, fmt.Errorf("frame %d: ppm header %s %d %d %d, want P6 W H 255", len(frames), magic, w, h, maxv)
		}
		if _, err := r.ReadByte(); err != nil { // the single whitespace after maxval
			return frames, err
		}
		f := Frame{W: w, H: h, RGB: make([]byte, 3*w*h)}
		if _, err := io.ReadFull(r, f.RGB); err != nil {
			return frames, fmt.Errorf("frame %d: %w", len(frames), err)
		}
		frames = append(frames, f)
	}
	return frames, nil
}
