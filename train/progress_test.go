package train

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// runProgress feeds steps 1..total, one every 0.5 s of fake time, with step 20 skipped.
func runProgress(p *Progress, total int) {
	p.now = fakeClock(t0, 500*time.Millisecond)
	for s := 1; s <= total; s++ {
		m := sampleStep(s)
		m.Skipped = s == 20
		p.Update(m)
		if s == 15 {
			p.Printf("checkpoint saved: ckpt-%09d.safetensors\n", s)
		}
	}
	p.Finish()
}

// TestProgressPlain checks the exact lines of plain mode: every 10 steps and the last, with rates from
// the fake clock (2 it/s) and the ETA they imply.
func TestProgressPlain(t *testing.T) {
	for _, mode := range []string{"plain", "auto"} { // auto on a non-terminal writer is plain
		t.Run("mode="+mode, func(t *testing.T) {
			var b bytes.Buffer
			runProgress(NewProgress(&b, mode, 30, 10), 30)
			want := strings.Join([]string{
				"step 10/30 (33.3%) | loss 0.1000 (tf 0.0400, rollout 0.0600) | lr 0.001 | 2.00 it/s, 16.0 clips/s | eta 10s",
				"checkpoint saved: ckpt-000000015.safetensors",
				"step 20/30 (66.7%) | loss 0.0500 (tf 0.0200, rollout 0.0300) | lr 0.002 | 2.00 it/s, 16.0 clips/s | eta 5s | skipped (non-finite gradients)",
				"step 30/30 (100.0%) | loss 0.0333 (tf 0.0133, rollout 0.0200) | lr 0.003 | 2.00 it/s, 16.0 clips/s | eta 0s",
			}, "\n") + "\n"
			if b.String() != want {
				t.Errorf("plain progress:\n%s\nwant:\n%s", b.String(), want)
			}
		})
	}
}

func TestProgressOff(t *testing.T) {
	var b bytes.Buffer
	runProgress(NewProgress(&b, "off", 30, 10), 30)
	if b.Len() != 0 {
		t.Errorf("mode off wrote %q", b.String())
	}
}

// TestProgressBar checks the in-place redraw: each draw starts with carriage return + erase-line, a
// message goes on its own line and the bar is redrawn under it, and Finish ends the line.
func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	runProgress(NewProgress(&b, "bar", 30, 10), 30)
	out := b.String()
	if n := strings.Count(out, "\r\x1b[K"); n != 31 { // 30 steps (0.5 s apart > redraw limit) + 1 message
		t.Errorf("%d redraws, want 31", n)
	}
	last := "\r\x1b[K[================] 30/30 100% | loss 0.0333 | lr 0.003 | 2.00 it/s, 16.0 clips/s | eta 0s\n"
	if !strings.HasSuffix(out, last) {
		t.Errorf("bar output ends %q, want %q", out[max(0, len(out)-len(last)):], last)
	}
	msg := "\r\x1b[Kcheckpoint saved: ckpt-000000015.safetensors\n[========        ] 15/30  50% | loss 0.0667 | lr 0.0015 | 2.00 it/s, 16.0 clips/s | eta 8s\r"
	if !strings.Contains(out, msg) {
		t.Errorf("bar output lacks the message followed by a redraw %q:\n%q", msg, out)
	}
	if !strings.Contains(out, "eta 5s | skip\r") {
		t.Errorf("bar output lacks the skipped marker at step 20")
	}
	for _, line := range strings.FieldsFunc(out, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if line = strings.TrimPrefix(line, "\x1b[K"); len(line) > 99 {
			t.Errorf("bar line of %d chars exceeds the 100-column fallback width: %q", len(line), line)
		}
	}
}

func TestFormatETA(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{1499 * time.Millisecond, "1s"},
		{59 * time.Second, "59s"},
		{60 * time.Second, "1m00s"},
		{187 * time.Second, "3m07s"},
		{3720 * time.Second, "1h02m"},
		{26*time.Hour + 5*time.Minute, "26h05m"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("d=%v", tt.d), func(t *testing.T) {
			if got := formatETA(tt.d); got != tt.want {
				t.Errorf("formatETA(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

// TestProgressAverageClips checks that clips/s is averaged over the run like it/s (clips since the
// first step over the time since), not the last step's rate: steps alternate between 8 clips in 0.25 s
// and 8 clips in 1 s, while the clock says 0.5 s per step, so the line must say 16 clips/s.
func TestProgressAverageClips(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, "plain", 20, 10)
	p.now = fakeClock(t0, 500*time.Millisecond)
	for s := 1; s <= 20; s++ {
		m := sampleStep(s)
		m.StepTime, m.ClipsPerSec = 0.25, 32
		if s%2 == 0 {
			m.StepTime, m.ClipsPerSec = 1, 8
		}
		p.Update(m)
	}
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if !strings.Contains(line, "| 2.00 it/s, 16.0 clips/s |") {
			t.Errorf("progress line %q, want the averages 2.00 it/s, 16.0 clips/s", line)
		}
	}
}

// TestProgressNarrow draws the bar on narrow terminals: every line fits, and the position and the ETA
// are kept while the other fields make way (the bar graphic and lr first).
func TestProgressNarrow(t *testing.T) {
	cases := []struct {
		width int
		want  []string // in the last line
		gone  []string
	}{
		{100, []string{"[====", "30/30 100%", "loss 0.0333", "lr 0.003", "2.00 it/s", "16.0 clips/s", "eta 0s"}, nil},
		{70, []string{"30/30 100%", "loss 0.0333", "2.00 it/s", "eta 0s"}, []string{"lr 0.003"}},
		{40, []string{"30/30 100%", "loss 0.0333", "eta 0s"}, []string{"[", "clips/s"}},
		{21, []string{"30/30 100% | eta 0s"}, []string{"loss"}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("width=%d", c.width), func(t *testing.T) {
			var b bytes.Buffer
			p := NewProgress(&b, "bar", 30, 10)
			p.width = func() int { return c.width }
			runProgress(p, 30)
			var last string
			for _, line := range strings.FieldsFunc(b.String(), func(r rune) bool { return r == '\r' || r == '\n' }) {
				line = strings.TrimPrefix(line, "\x1b[K")
				if strings.HasPrefix(line, "checkpoint saved") {
					continue
				}
				if len(line) > c.width-1 {
					t.Errorf("line of %d columns on a %d-column terminal: %q", len(line), c.width, line)
				}
				if !strings.Contains(line, "eta ") {
					t.Errorf("line without the ETA: %q", line)
				}
				last = line
			}
			for _, w := range c.want {
				if !strings.Contains(last, w) {
					t.Errorf("last line %q lacks %q", last, w)
				}
			}
			for _, g := range c.gone {
				if strings.Contains(last, g) {
					t.Errorf("last line %q still has %q", last, g)
				}
			}
		})
	}
}

func TestFitBar(t *testing.T) {
	parts := []barPart{{"[===]", "", 3}, {"1/9", " ", 0}, {"a", " | ", 2}, {"eta 5s", " | ", 1}}
	for _, c := range []struct {
		width int
		want  string
	}{
		{40, "[===] 1/9 | a | eta 5s"},
		{21, "1/9 | a | eta 5s"},
		{12, "1/9 | eta 5s"},
		{5, "1/9"},
		{2, "1/"}, // the essential part alone does not fit: cut
	} {
		if got := fitBar(parts, c.width); got != c.want {
			t.Errorf("fitBar(width=%d) = %q, want %q", c.width, got, c.want)
		}
	}
}
