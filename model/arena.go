package model

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"

	"github.com/vjepa-vk/vjepa-vk/vk"
)

// A training step is recorded once and replayed, so the lifetime of every tensor it uses is known before
// anything is allocated. The step is a fixed sequence of phases (a pass's forward blocks, the loss, a
// pass's backward blocks, ...), and a tensor holds data from the phase that first writes it to the last
// phase that reads it; two tensors whose lifetimes are disjoint may share bytes. Arena collects tensors
// with their lifetimes, places them (largest first, each at the lowest offset that overlaps no placed
// tensor of intersecting lifetime: the offline strategy of TFLite's arena planner), allocates the
// placement in a few large chunks and writes views into the callers' fields.
//
// A nested arena lays out a region that is one tensor of its parent: a block's workspace is planned over
// the sub-phases of one block, and the whole workspace is one tensor of the pass, live while blocks run.
//
// Aliasing changes no value: each dispatch reads only tensors live in its phase, and those never share
// bytes with anything written in that phase. CheckLifetimes turns on a mode in which no tensors share
// bytes and Enter fills every tensor with NaN when its lifetime starts or ends, so that a dispatch reading
// outside the declared lifetime shows up as NaN; the tests compare such runs with unchecked (shared)
// ones bit for bit.

// Life is the phases [First, Last] (inclusive) during which a tensor holds data that a dispatch reads.
type Life struct{ First, Last int }

// During returns the single lifetime [first, last].
func During(first, last int) []Life { return []Life{{first, last}} }

// At returns a lifetime of the given single phases.
func At(phases ...int) []Life {
	l := make([]Life, len(phases))
	for i, p := range phases {
		l[i] = Life{p, p}
	}
	return l
}

// arenaAlign is the byte alignment of every placement: 256 B is the largest minStorageBufferOffsetAlignment
// Vulkan allows, so every view can be bound on its own on any device.
const arenaAlign = 256

// arenaChunk caps a chunk of the top-level arena (a tensor larger than that gets a chunk of its own size):
// a few large allocations, none near the 4 GiB some drivers cap a buffer at.
const arenaChunk = 1 << 30

// Arena places tensors with known lifetimes. Declare tensors (F32, Persistent, Nested) and phases, then
// Allocate once; Free releases the memory.
type Arena struct {
	name   string
	d      *vk.Device
	plan   *Plan // non-nil: count bytes, allocate nothing
	check  bool  // share nothing; fill tensors with NaN where their lifetimes start and end (tests)
	phases []string
	items  []*arenaItem
	nested bool // laid out inside a parent's tensor: one chunk without a cap

	chunks []int64     // bytes of each chunk after placement
	owned  []vk.Tensor // allocated chunks (top level)
	placed bool
	prev   int // last phase entered; -1 before the first (check mode)
}

type arenaItem struct {
	name       string
	dst        *vk.Tensor // where Allocate writes the view (nil: nowhere)
	shape      []int
	bytes      int64 // rounded up to arenaAlign
	lives      []Life
	persistent bool
	sub        *Arena // nested arena laid out in this item
	chunk      int
	off        int64
	view       vk.Tensor
}

// NewArena returns an empty arena on p's device (or, for a planning predictor, one that counts bytes into
// p's plan). name prefixes its errors and report.
func (p *Predictor) NewArena(name string) *Arena {
	return &Arena{name: name, d: p.d, plan: p.plan, check: p.checkLifetimes, prev: -1}
}

// CheckLifetimes makes arenas created from now on give every tensor bytes of its own and fill it with NaN
// where its declared lifetime starts and ends (one fill dispatch each): a dispatch that reads a tensor
// outside its lifetime then produces NaN. For tests; it changes no result of a correct program.
func (p *Predictor) CheckLifetimes(on bool) { p.checkLifetimes = on }

// Phase appends a phase to the arena's timeline and returns its number. Phases are numbered in the order
// the step records them.
func (a *Arena) Phase(name string) int {
	a.phases = append(a.phases, name)
	return len(a.phases) - 1
}

// F32 declares an f32 tensor of the given shape live during lives; Allocate writes its view to dst.
func (a *Arena) F32(dst *vk.Tensor, name string, lives []Life, shape ...int) {
	a.add(&arenaItem{name: name, dst: dst, shape: shape, lives: mergeLives(lives)})
}

// Persistent declares an f32 tensor that shares bytes with nothing: inputs the host writes before a run
// and outputs it reads after one (a recorded step may be replayed without rewriting them).
func (a *Arena) Persistent(dst *vk.Tensor, name string, shape ...int) {
	a.add(&arenaItem{name: name, dst: dst, shape: shape, persistent: true})
}

// Nested declares a region live during lives whose own tensors are laid out by the returned arena, over
// a timeline of its own (Phase on the nested arena). Its size is known once its tensors are declared.
func (a *Arena) Nested(name string, lives []Life) *Arena {
	sub := &Arena{name: a.name + "." + name, d: a.d, plan: a.plan, check: a.check, nested: true, prev: -1}
	a.add(&arenaItem{name: name, lives: mergeLives(lives), sub: sub})
	return sub
}

func (a *Arena) add(it *arenaItem) {
	if a.placed {
		panic(fmt.Sprintf("model: arena %s: tensor %s declared after Allocate", a.name, it.name))
	}
	for _, l := range it.lives {
		if l.First > l.Last || l.First < 0 || l.Last >= len(a.phases) {
			panic(fmt.Sprintf("model: arena %s: tensor %s: lifetime %v outside phases [0, %d)", a.name, it.name, l, len(a.phases)))
		}
	}
	if it.sub == nil {
		n := int64(4)
		for _, s := range it.shape {
			n *= int64(s)
		}
		it.bytes = alignArena(n)
	}
	a.items = append(a.items, it)
}

func alignArena(n int64) int64 { return (max(n, 1) + arenaAlign - 1) / arenaAlign * arenaAlign }

// mergeLives sorts lifetimes and joins those that overlap or touch.
func mergeLives(lives []Life) []Life {
	l := slices.Clone(lives)
	slices.SortFunc(l, func(x, y Life) int { return x.First - y.First })
	var out []Life
	for _, x := range l {
		if n := len(out); n > 0 && x.First <= out[n-1].Last+1 {
			out[n-1].Last = max(out[n-1].Last, x.Last)
			continue
		}
		out = append(out, x)
	}
	return out
}

func (it *arenaItem) liveAt(p int) bool {
	if it.persistent {
		return true
	}
	for _, l := range it.lives {
		if l.First <= p && p <= l.Last {
			return true
		}
	}
	return false
}

// conflicts reports whether two tensors are ever live in the same phase.
func conflicts(x, y *arenaItem) bool {
	if x.persistent || y.persistent {
		return true
	}
	for _, a := range x.lives {
		for _, b := range y.lives {
			if a.First <= b.Last && b.First <= a.Last {
				return true
			}
		}
	}
	return false
}

// place lays the tensors out: nested arenas first (their sizes), then largest first, each in the first
// chunk with a gap that overlaps no conflicting placed tensor.
func (a *Arena) place() {
	for _, it := range a.items {
		if it.sub != nil {
			it.sub.place()
			it.bytes = alignArena(it.sub.Bytes())
		}
	}
	order := make([]*arenaItem, len(a.items))
	copy(order, a.items)
	sort.SliceStable(order, func(i, j int) bool { return order[i].bytes > order[j].bytes })
	var caps []int64
	var in [][]*arenaItem // placed items per chunk
	for _, it := range order {
		placed := false
		for c := range caps {
			if off, ok := fit(in[c], it, caps[c], a.check); ok {
				it.chunk, it.off = c, off
				in[c] = append(in[c], it)
				placed = true
				break
			}
		}
		if !placed {
			cp := int64(math.MaxInt64)
			if !a.nested {
				cp = max(arenaChunk, it.bytes)
			}
			caps = append(caps, cp)
			in = append(in, []*arenaItem{it})
			it.chunk, it.off = len(caps)-1, 0
		}
	}
	a.chunks = make([]int64, len(caps))
	for _, it := range a.items {
		a.chunks[it.chunk] = max(a.chunks[it.chunk], it.off+it.bytes)
	}
	a.placed = true
}

// fit returns the lowest offset at which it overlaps no tensor of placed whose lifetime meets its own.
// With check, every placed tensor counts as conflicting.
func fit(placed []*arenaItem, it *arenaItem, capacity int64, check bool) (int64, bool) {
	type span struct{ lo, hi int64 }
	var busy []span
	for _, p := range placed {
		if check || conflicts(p, it) {
			busy = append(busy, span{p.off, p.off + p.bytes})
		}
	}
	sort.Slice(busy, func(i, j int) bool { return busy[i].lo < busy[j].lo })
	off := int64(0)
	for _, b := range busy {
		if off+it.bytes <= b.lo {
			break
		}
		off = max(off, b.hi)
	}
	return off, off+it.bytes <= capacity
}

// Bytes is the arena's size: the sum of its chunks (valid after Allocate, or, nested, after the parent's).
func (a *Arena) Bytes() int64 {
	var n int64
	for _, c := range a.chunks {
		n += c
	}
	return n
}

// LiveBound is the most bytes live in any one phase: no placement of these lifetimes can be smaller.
func (a *Arena) LiveBound() int64 {
	var best int64
	for p := range max(len(a.phases), 1) {
		var n int64
		for _, it := range a.items {
			if it.liveAt(p) {
				n += it.bytes
			}
		}
		best = max(best, n)
	}
	return best
}

// Allocate places every declared tensor, allocates the chunks (a planning arena only adds their bytes to
// the plan) and writes each tensor's view to its destination.
func (a *Arena) Allocate() error {
	if a.nested {
		panic("model: arena " + a.name + ": a nested arena is allocated by its parent")
	}
	a.place()
	if a.plan != nil {
		for _, c := range a.chunks {
			a.plan.add(c)
		}
		a.bind(nil)
		return nil
	}
	chunks := make([]vk.Tensor, len(a.chunks))
	for i, n := range a.chunks {
		t, err := a.d.NewTensor(vk.F32, int(n/4))
		if err != nil {
			a.Free()
			return fmt.Errorf("model: allocate arena %s (chunk %d of %d MiB): %w", a.name, i, n>>20, err)
		}
		chunks[i] = t
		a.owned = append(a.owned, t)
	}
	a.bind(chunks)
	return nil
}

// bind writes the views of the tensors into chunks (nil: shape-only tensors of a plan).
func (a *Arena) bind(chunks []vk.Tensor) {
	for _, it := range a.items {
		if chunks == nil {
			it.view = vk.Tensor{DType: vk.F32, Shape: it.shape}
		} else {
			c := chunks[it.chunk]
			n := int(it.bytes / 4)
			if it.sub == nil {
				n = numel(it.shape)
			}
			it.view = c.Reshape(c.Numel()).Slice(int(it.off/4), n)
			if it.sub == nil {
				it.view = it.view.Reshape(it.shape...)
			}
		}
		if it.dst != nil {
			*it.dst = it.view
		}
		if it.sub != nil {
			var sc []vk.Tensor
			if chunks != nil {
				sc = []vk.Tensor{it.view}
			}
			it.sub.bind(sc)
		}
	}
}

func numel(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}

// Free releases the arena's memory.
func (a *Arena) Free() {
	for _, t := range a.owned {
		a.d.Free(t)
	}
	a.owned = nil
}

// Enter marks the start of phase p in the recording on s. With lifetime checks on, it records NaN fills of
// every tensor that was live in the previous phase and is not in p, or is live in p and was not before;
// a phase not after the previous one starts a new recording and fills every non-persistent tensor.
// Without checks (or on a nil arena) it records nothing.
func (a *Arena) Enter(s *vk.Stream, p int) {
	if a == nil || !a.check || a.plan != nil {
		return
	}
	restart := p <= a.prev
	for _, it := range a.items {
		if it.persistent {
			continue
		}
		now := it.liveAt(p)
		if restart || a.prev < 0 || now != it.liveAt(a.prev) {
			poison(s, it.view)
		}
	}
	a.prev = p
}

// poison fills t with NaN in pieces no larger than a binding.
func poison(s *vk.Stream, t vk.Tensor) {
	flat := t.Reshape(t.Numel())
	const piece = 1 << 24
	for lo := 0; lo < flat.Numel(); lo += piece {
		vk.Fill(s, flat.Slice(lo, min(piece, flat.Numel()-lo)), float32(math.NaN()))
	}
}

// Report writes the arena's size and the tensors live in the phase with the most live bytes (the bound
// no placement can beat), largest first (a nested arena as one line).
func (a *Arena) Report(w io.Writer) {
	if !a.placed {
		a.place()
	}
	peak, best := 0, int64(-1)
	for p := range max(len(a.phases), 1) {
		var n int64
		for _, it := range a.items {
			if it.liveAt(p) {
				n += it.bytes
			}
		}
		if n > best {
			peak, best = p, n
		}
	}
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	name := "(none)"
	if peak < len(a.phases) {
		name = a.phases[peak]
	}
	fmt.Fprintf(w, "arena %s: %.1f MiB in %d chunk(s); most live in one phase: %.1f MiB in %s\n", a.name, mib(a.Bytes()), len(a.chunks), mib(best), name)
	var live []*arenaItem
	for _, it := range a.items {
		if it.liveAt(peak) {
			live = append(live, it)
		}
	}
	sort.SliceStable(live, func(i, j int) bool { return live[i].bytes > live[j].bytes })
	const lines = 12
	var rest int64
	for i, it := range live {
		if i < lines {
			fmt.Fprintf(w, "  %10.1f MiB  %s\n", mib(it.bytes), it.name)
		} else {
			rest += it.bytes
		}
	}
	if len(live) > lines {
		fmt.Fprintf(w, "  %10.1f MiB  %d more\n", mib(rest), len(live)-lines)
	}
}
