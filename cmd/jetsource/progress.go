package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress reports the progress of a long command. On a terminal it draws
// a progress bar with the rate and the time left (github.com/schollz/
// progressbar); on anything else (a file, a pipe, a test buffer) it writes
// a plain line every interval and a last one from Finish, so logs stay
// readable.
//
// Add may be called from any goroutine. Other output meant for the same
// writer while the progress runs goes through Println, which keeps the two
// from garbling each other (and from racing on the writer). Finish must be
// called once; it stops the goroutine of the plain mode.
type progress struct {
	w        io.Writer
	label    string
	unit     string // "bytes", or the name of the items counted
	total    int64  // <= 0: unknown
	interval time.Duration
	tty      *bool
	disabled bool

	mu       sync.Mutex
	n        int64
	start    time.Time
	bar      *progressbar.ProgressBar
	finished bool
	stop     chan struct{}
	done     chan struct{}
}

// progressOption sets an option of [newProgress].
type progressOption func(*progress)

// withProgressUnit counts items named unit ("lines", "events") instead of
// bytes.
func withProgressUnit(unit string) progressOption {
	return func(p *progress) { p.unit = unit }
}

// withProgressInterval sets how often the plain mode writes a line
// (default 1s).
func withProgressInterval(d time.Duration) progressOption {
	return func(p *progress) {
		if d > 0 {
			p.interval = d
		}
	}
}

// withProgressTTY forces the bar (true) or the plain lines (false) instead
// of asking whether the writer is a terminal.
func withProgressTTY(tty bool) progressOption {
	return func(p *progress) { p.tty = &tty }
}

// withProgressDisabled makes the progress silent: Add only counts,
// Println still prints.
func withProgressDisabled(off bool) progressOption {
	return func(p *progress) { p.disabled = off }
}

// newProgress starts reporting progress towards total (bytes unless
// [withProgressUnit] names items; total <= 0 when unknown: no percentage
// and no time left) on w, each report starting with label.
func newProgress(w io.Writer, total int64, label string, opts ...progressOption) *progress {
	p := &progress{w: w, label: label, unit: "bytes", total: total, interval: time.Second, start: time.Now()}
	for _, o := range opts {
		o(p)
	}
	if p.disabled {
		return p
	}
	tty := isTerminal(w)
	if p.tty != nil {
		tty = *p.tty
	}
	if tty {
		max := p.total
		if max <= 0 {
			max = -1 // a spinner
		}
		bopts := []progressbar.Option{
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(label),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		}
		if p.unit == "bytes" {
			bopts = append(bopts, progressbar.OptionShowBytes(true), progressbar.OptionShowTotalBytes(true))
		} else {
			bopts = append(bopts, progressbar.OptionShowIts(), progressbar.OptionSetItsString(p.unit))
		}
		p.bar = progressbar.NewOptions64(max, bopts...)
		return p
	}
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	go p.tick()
	return p
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Add counts n more bytes (or items).
func (p *progress) Add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += n
	if p.bar != nil && !p.finished {
		_ = p.bar.Add64(n)
	}
}

// Count returns what was counted so far.
func (p *progress) Count() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Println writes a line to the progress's writer without garbling the bar
// and without racing with the plain mode's reports.
func (p *progress) Println(a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil && !p.finished {
		_ = p.bar.Clear()
	}
	fmt.Fprintln(p.w, a...)
}

// Finish ends the report: the bar is completed, the plain mode writes its
// last line. It is safe to call more than once.
func (p *progress) Finish() {
	p.mu.Lock()
	if p.finished {
		p.mu.Unlock()
		return
	}
	p.finished = true
	if p.bar != nil {
		if p.total > 0 {
			_ = p.bar.Finish()
		} else {
			_ = p.bar.Exit()
		}
	}
	stop := p.stop
	p.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-p.done
	p.mu.Lock()
	fmt.Fprintln(p.w, p.lineLocked(true))
	p.mu.Unlock()
}

// tick writes the plain lines until Finish.
func (p *progress) tick() {
	defer close(p.done)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			fmt.Fprintln(p.w, p.lineLocked(false))
			p.mu.Unlock()
		}
	}
}

// lineLocked formats one plain report such as
// "import: 4.5 MB / 10.0 MB (45%), 2.1 MB/s, ETA 3s".
func (p *progress) lineLocked(final bool) string {
	elapsed := time.Since(p.start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(p.n) / s
	}
	var b strings.Builder
	b.WriteString(p.label)
	b.WriteString(": ")
	b.WriteString(p.amount(p.n))
	if p.total > 0 {
		fmt.Fprintf(&b, " / %s (%d%%)", p.amount(p.total), percent(p.n, p.total))
	}
	fmt.Fprintf(&b, ", %s/s", p.rateString(rate))
	switch {
	case final:
		fmt.Fprintf(&b, ", done in %s", roundDuration(elapsed))
	case p.total > 0 && rate > 0 && p.n < p.total:
		eta := time.Duration(float64(p.total-p.n) / rate * float64(time.Second))
		fmt.Fprintf(&b, ", ETA %s", roundDuration(eta))
	}
	return b.String()
}

func (p *progress) amount(n int64) string {
	if p.unit == "bytes" {
		return humanBytes(float64(n))
	}
	return fmt.Sprintf("%d %s", n, p.unit)
}

func (p *progress) rateString(r float64) string {
	if p.unit == "bytes" {
		return humanBytes(r)
	}
	return fmt.Sprintf("%.0f %s", r, p.unit)
}

func percent(n, total int64) int64 {
	if total <= 0 {
		return 0
	}
	if n >= total {
		return 100
	}
	return n * 100 / total
}

// humanBytes formats a byte count with a decimal unit: 512 B, 4.5 MB.
func humanBytes(n float64) string {
	const units = "kMGTPE"
	if n < 1000 {
		return fmt.Sprintf("%.0f B", n)
	}
	i := -1
	for n >= 1000 && i < len(units)-1 {
		n /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %cB", n, units[i])
}

// roundDuration rounds for display: whole seconds from 10s on, tenths
// below, milliseconds below 1s.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Millisecond)
	}
}
