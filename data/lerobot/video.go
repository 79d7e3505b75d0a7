package lerobot

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
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

// VideoDecoder decodes frames of video files with FFmpeg (Debian's ffmpeg: libdav1d for AV1, its own
// H.264 decoder). One process per call decodes from the key frame before the first timestamp up to the
// last, passes only the asked-for frames through a select filter, and writes them as binary PPM (RGB
// with a tiny size header, so a wrong size in info.json cannot shear the pixels) to a pipe.
type VideoDecoder struct {
	FFmpeg  string // the ffmpeg executable; "" looks up "ffmpeg" on PATH
	Threads int    // decoder threads per process; 0 = 1, since the loader runs one decode per worker
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

// Args are the FFmpeg arguments that decode the frames at times (seconds, increasing) from path.
func (d *VideoDecoder) Args(path string, times []float64, fps float64) []string {
	threads := d.Threads
	if threads <= 0 {
		threads = 1
	}
	var sel strings.Builder
	for i, t := range times {
		if i > 0 {
			sel.WriteByte('+')
		}
		fmt.Fprintf(&sel, "lt(abs(t-%s),%g)", strconv.FormatFloat(t, 'g', 17, 64), TimestampTolerance)
	}
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error", "-threads", strconv.Itoa(threads),
		// Keep the file's timestamps, so select's t is the frame's time as LeRobot computes it (pts·time_base).
		"-copyts"}
	if start := times[0] - 0.5/fps; start > 0 {
		// Input seek: demuxing starts at the key frame before start; frames before it are never decoded.
		args = append(args, "-ss", strconv.FormatFloat(start, 'f', 6, 64))
	}
	return append(args, "-i", path, "-map", "0:v:0", "-an", "-sn", "-dn",
		"-filter_threads", "1", "-vf", "select='"+sel.String()+"'", "-fps_mode", "passthrough",
		"-frames:v", strconv.Itoa(len(times)), "-f", "image2pipe", "-c:v", "ppm", "pipe:1")
}

// Decode returns the frames of the video file path at times (seconds in the file's timeline,
// increasing). fps is the video's nominal rate (for the seek margin). A file FFmpeg cannot read, or one
// without a frame within TimestampTolerance of each time, gives a *DecodeError.
func (d *VideoDecoder) Decode(ctx context.Context, path string, times []float64, fps float64) ([]Frame, error) {
	if len(times) == 0 {
		return nil, nil
	}
	bin := d.FFmpeg
	if bin == "" {
		bin = "ffmpeg"
	}
	cmd := exec.CommandContext(ctx, bin, d.Args(path, times, fps)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("lerobot: decode %s: %w", path, err)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("lerobot: decode %s: %w (install FFmpeg: apt-get install ffmpeg, or run ./build.sh)", path, err)
		}
		return nil, fmt.Errorf("lerobot: decode %s: %w", path, err)
	}
	frames, rerr := readPPMs(bufio.NewReaderSize(out, 1<<20), len(times))
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	de := &DecodeError{File: path, Times: times, Got: len(frames)}
	switch {
	case werr != nil:
		de.Detail = lastLines(stderr.String(), 3)
		if de.Detail == "" {
			de.Detail = werr.Error()
		}
		return nil, de
	case rerr != nil:
		de.Detail = rerr.Error()
		return nil, de
	case len(frames) < len(times):
		return nil, de
	}
	return frames, nil
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
			if err == io.EOF && len(frames) > 0 || err == io.EOF {
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
