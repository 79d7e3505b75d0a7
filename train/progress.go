package train

// Progress shows training progress on the terminal: a bar redrawn in place (carriage return + erase line)
// when the writer is a terminal, plain lines every N steps otherwise (logs, CI, nohup), nothing when off.

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Progress reports steps, it/s, clips/s, loss, lr and ETA.
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	mode  string // bar, plain or off (auto resolved)
	total int
	every int
	now   func() time.Time
	width func() int // terminal columns, bar mode only

	firstStep int // step of the first Update; rates count from there
	firstTime time.Time
	lastDraw  time.Time
	lastLine  string
	drawn     bool
}

// barRedraw limits how often the bar is redrawn; faster steps would only flicker.
const barRedraw = 100 * time.Millisecond

// NewProgress reports to w in mode auto, bar, plain or off (logging.progress). auto picks bar when w is a
// terminal and plain otherwise. total is training.steps; plain mode prints every `every` steps and at the
// last step.
func NewProgress(w io.Writer, mode string, total, every int) *Progress {
	p := &Progress{w: w, mode: mode, total: total, every: max(every, 1), now: time.Now}
	f, isFile := w.(*os.File)
	isTerm := isFile && term.IsTerminal(int(f.Fd()))
	if mode == "auto" {
		p.mode = "plain"
		if isTerm {
			p.mode = "bar"
		}
	}
	p.width = func() int { return 100 }
	if isTerm {
		p.width = func() int {
			if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
				return w
			}
			return 100
		}
	}
	return p
}

// Update reports a finished step.
func (p *Progress) Update(m StepMetrics) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "off" {
		return
	}
	now := p.now()
	if p.firstTime.IsZero() {
		p.firstStep, p.firstTime = m.Step, now
	}
	itPerSec := math.NaN()
	if done := m.Step - p.firstStep; done > 0 {
		itPerSec = float64(done) / now.Sub(p.firstTime).Seconds()
	} else if m.StepTime > 0 {
		itPerSec = 1 / m.StepTime
	}
	eta := "?"
	if itPerSec > 0 && !math.IsInf(itPerSec, 0) {
		eta = formatETA(time.Duration(float64(p.total-m.Step) / itPerSec * float64(time.Second)))
	}
	pct := 100 * float64(m.Step) / float64(max(p.total, 1))
	stats := fmt.Sprintf("loss %.4f (tf %.4f, rollout %.4f) | lr %.3g | %.2f it/s, %.1f clips/s | eta %s",
		m.Loss, m.LossTF, m.LossRollout, m.LR, itPerSec, m.ClipsPerSec, eta)
	if m.Skipped {
		stats += " | skipped (non-finite gradients)"
	}

	switch p.mode {
	case "plain":
		if m.Step%p.every == 0 || m.Step == p.total {
			fmt.Fprintf(p.w, "step %d/%d (%.1f%%) | %s\n", m.Step, p.total, pct, stats)
		}
	case "bar":
		if m.Step != p.total && p.drawn && now.Sub(p.lastDraw) < barRedraw {
			return
		}
		// Shorter than the plain line (no tf/rollout split) so it fits 100 columns with the ETA.
		const barWidth = 16
		filled := int(float64(barWidth) * float64(m.Step) / float64(max(p.total, 1)))
		filled = min(max(filled, 0), barWidth)
		line := fmt.Sprintf("[%s%s] %d/%d %3.0f%% | loss %.4f | lr %.3g | %.2f it/s, %.1f clips/s | eta %s",
			strings.Repeat("=", filled), strings.Repeat(" ", barWidth-filled), m.Step, p.total, pct,
			m.Loss, m.LR, itPerSec, m.ClipsPerSec, eta)
		if m.Skipped {
			line += " | skip"
		}
		if w := p.width() - 1; len(line) > w {
			line = line[:w]
		}
		p.lastLine, p.lastDraw, p.drawn = line, now, true
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
	}
}

// Printf prints a message on its own line (checkpoint saved, validation result) without breaking the bar.
func (p *Progress) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "off" {
		return
	}
	msg := strings.TrimSuffix(fmt.Sprintf(format, args...), "\n")
	if p.mode == "bar" && p.drawn {
		fmt.Fprintf(p.w, "\r\x1b[K%s\n%s", msg, p.lastLine)
		return
	}
	fmt.Fprintln(p.w, msg)
}

// Finish ends the bar's line so later output starts on a fresh one.
func (p *Progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "bar" && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// formatETA prints 1h02m, 3m07s or 42s.
func formatETA(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	switch {
	case s >= 3600:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	case s >= 60:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	return fmt.Sprintf("%ds", s)
}
