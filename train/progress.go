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
	"unicode/utf8"

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
	first     StepMetrics // the first step seen, whose own time ends at firstTime
	clips     float64     // clips of the steps after the first Update, for the average clips/s
	lastStep  int
	lastTime  time.Time
	lastDraw  time.Time
	lastLine  string
	drawn     bool
	best      *ValMetrics // lowest validation loss reported by Validation
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
	now := p.now()
	if p.firstTime.IsZero() {
		p.firstStep, p.firstTime, p.first = m.Step, now, m
	} else if m.StepTime > 0 {
		p.clips += m.ClipsPerSec * m.StepTime
	}
	p.lastStep, p.lastTime = m.Step, now
	if p.mode == "off" {
		return
	}
	// Both rates are averages since the first step seen (its own time falls before firstTime), so
	// clips/s is it/s times the clips per step instead of one step's jittery rate.
	itPerSec, clipsPerSec := p.rates(m)
	eta := "?"
	if itPerSec > 0 && !math.IsInf(itPerSec, 0) {
		eta = formatETA(time.Duration(float64(p.total-m.Step) / itPerSec * float64(time.Second)))
	}
	pct := 100 * float64(m.Step) / float64(max(p.total, 1))
	stats := fmt.Sprintf("loss %.4f (tf %.4f, rollout %.4f) | lr %.3g | %.2f it/s, %.1f clips/s | eta %s",
		m.Loss, m.LossTF, m.LossRollout, m.LR, itPerSec, clipsPerSec, eta)
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
		parts := []barPart{
			{fmt.Sprintf("[%s%s]", strings.Repeat("=", filled), strings.Repeat(" ", barWidth-filled)), "", 4},
			{fmt.Sprintf("%d/%d %3.0f%%", m.Step, p.total, pct), " ", 0},
			{fmt.Sprintf("loss %.4f", m.Loss), " | ", 2},
			{fmt.Sprintf("lr %.3g", m.LR), " | ", 6},
			{fmt.Sprintf("%.2f it/s", itPerSec), " | ", 3},
			{fmt.Sprintf("%.1f clips/s", clipsPerSec), ", ", 5},
			{"eta " + eta, " | ", 1},
		}
		if m.Skipped {
			parts = append(parts, barPart{"skip", " | ", 2})
		}
		line := fitBar(parts, p.width()-1)
		p.lastLine, p.lastDraw, p.drawn = line, now, true
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
	}
}

// rates are it/s and clips/s averaged since the first step seen; before a second step, m's own rates.
func (p *Progress) rates(m StepMetrics) (itPerSec, clipsPerSec float64) {
	if done := p.lastStep - p.firstStep; done > 0 {
		secs := p.lastTime.Sub(p.firstTime).Seconds()
		return float64(done) / secs, p.clips / secs
	}
	if m.StepTime > 0 {
		return 1 / m.StepTime, m.ClipsPerSec
	}
	return math.NaN(), m.ClipsPerSec
}

// Totals are the steps reported so far, the time they took (the first step's own time included) and the
// average rates over that time, for the end summary.
func (p *Progress) Totals() (steps int, elapsed time.Duration, itPerSec, clipsPerSec float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.firstTime.IsZero() {
		return 0, 0, math.NaN(), math.NaN()
	}
	steps = p.lastStep - p.firstStep + 1
	elapsed = p.lastTime.Sub(p.firstTime) + time.Duration(p.first.StepTime*float64(time.Second))
	clips := p.clips + p.first.ClipsPerSec*p.first.StepTime
	return steps, elapsed, float64(steps) / elapsed.Seconds(), clips / elapsed.Seconds()
}

// Best returns the validation with the lowest loss reported by Validation, if any.
func (p *Progress) Best() (ValMetrics, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.best == nil {
		return ValMetrics{}, false
	}
	return *p.best, true
}

// barPart is one field of the bar line. When the terminal is too narrow for all of them, fields are
// dropped by decreasing prio (0 is kept always), so the position and the ETA outlive the rest.
type barPart struct {
	text, sep string // sep goes before text unless text starts the line
	prio      int
}

// fitBar joins the parts that fit in width columns, dropping the least important first; only when the
// essential ones alone are too long is the line cut.
func fitBar(parts []barPart, width int) string {
	keep := make([]bool, len(parts))
	for i := range keep {
		keep[i] = true
	}
	join := func() string {
		var b strings.Builder
		for i, pt := range parts {
			if keep[i] {
				if b.Len() > 0 {
					b.WriteString(pt.sep)
				}
				b.WriteString(pt.text)
			}
		}
		return b.String()
	}
	line := join()
	for utf8.RuneCountInString(line) > width {
		drop := -1
		for i, pt := range parts {
			if keep[i] && pt.prio > 0 && (drop < 0 || pt.prio > parts[drop].prio) {
				drop = i
			}
		}
		if drop < 0 {
			return string([]rune(line)[:max(width, 0)])
		}
		keep[drop] = false
		line = join()
	}
	return line
}

// Validation prints a validation result on its own line and remembers the best for Summary.
func (p *Progress) Validation(vm ValMetrics) {
	p.mu.Lock()
	if !math.IsNaN(vm.Loss) && (p.best == nil || vm.Loss < p.best.Loss) {
		best := vm
		p.best = &best
	}
	p.mu.Unlock()
	p.Printf("validation at step %d: loss %.4f (tf %.4f, rollout %.4f) on %d clips", vm.Step, vm.Loss, vm.LossTF, vm.LossRollout, vm.Clips)
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
