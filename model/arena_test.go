package model

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestArenaLayout checks a hand-placed case: tensors of disjoint lifetimes share bytes, overlapping ones
// do not, persistent ones share with nothing, and a nested arena is one tensor of its parent's size.
func TestArenaLayout(t *testing.T) {
	a := &Arena{name: "t", prev: -1}
	for i := 0; i < 4; i++ {
		a.Phase(fmt.Sprint(i))
	}
	a.F32(nil, "x", During(0, 1), 64)  // 256 B
	a.F32(nil, "y", During(2, 3), 64)  // shares with x
	a.F32(nil, "z", During(1, 2), 100) // 400 B → 512 B, meets x and y
	a.Persistent(nil, "p", 10)         // 256 B, meets everything
	w := a.Nested("w", At(3))          // meets y, p
	w.Phase("a")
	w.Phase("b")
	w.F32(nil, "w1", At(0), 128) // 512 B
	w.F32(nil, "w2", At(1), 128) // shares with w1
	a.place()
	got := map[string]int64{}
	for _, it := range a.items {
		got[it.name] = it.off
	}
	// Largest first: z and w (512 B each, disjoint lifetimes) share offset 0; x and y (disjoint) share
	// the next 256 B; p goes after everything.
	want := map[string]int64{"z": 0, "w": 0, "x": 512, "y": 512, "p": 768}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("offset of %s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	if b, lb := a.Bytes(), a.LiveBound(); b != 1024 || lb != 1024 {
		t.Errorf("Bytes() = %d, LiveBound() = %d, want 1024 (phase 1: x, z, p), 1024", b, lb)
	}
	if b := w.Bytes(); b != 512 {
		t.Errorf("nested Bytes() = %d, want 512 (two tensors of disjoint lifetimes)", b)
	}
}

// TestArenaPlacement places random tensors with random lifetimes and checks the invariants: no two
// tensors whose lifetimes meet share a byte; chunks respect their cap; no placement beats the bound;
// with lifetime checks on, no tensors share at all.
func TestArenaPlacement(t *testing.T) {
	for _, c := range []struct {
		items, phases int
		maxBytes      int64
		check         bool
	}{
		{1, 1, 1 << 10, false}, {10, 4, 1 << 20, false}, {200, 30, 1 << 28, false}, {200, 30, 1 << 28, true},
		{50, 8, 3 << 30, false}, // tensors larger than a chunk
	} {
		t.Run(fmt.Sprintf("items=%d,phases=%d,max=%d,check=%v", c.items, c.phases, c.maxBytes, c.check), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(c.items), uint64(c.phases)))
			a := &Arena{name: "t", prev: -1, check: c.check}
			for i := 0; i < c.phases; i++ {
				a.Phase(fmt.Sprint(i))
			}
			for i := 0; i < c.items; i++ {
				n := 1 + r.Int64N(c.maxBytes/4)
				switch r.IntN(10) {
				case 0:
					a.Persistent(nil, fmt.Sprint(i), int(n))
				default:
					var lives []Life
					for range 1 + r.IntN(3) {
						f := r.IntN(c.phases)
						lives = append(lives, Life{f, f + r.IntN(c.phases-f)})
					}
					a.F32(nil, fmt.Sprint(i), lives, int(n))
				}
			}
			a.place()
			caps := make([]int64, len(a.chunks)) // a chunk holds at most max(arenaChunk, its largest tensor)
			for _, x := range a.items {
				caps[x.chunk] = max(caps[x.chunk], arenaChunk, x.bytes)
			}
			for c, n := range a.chunks {
				if n > caps[c] {
					t.Fatalf("chunk %d holds %d bytes, cap %d", c, n, caps[c])
				}
			}
			for i, x := range a.items {
				if x.off%arenaAlign != 0 {
					t.Fatalf("%s at offset %d, not %d-aligned", x.name, x.off, arenaAlign)
				}
				for _, y := range a.items[i+1:] {
					if x.chunk != y.chunk || x.off >= y.off+y.bytes || y.off >= x.off+x.bytes {
						continue
					}
					if c.check || conflicts(x, y) {
						t.Fatalf("%s %v [%d, %d) and %s %v [%d, %d) share bytes in chunk %d", x.name, x.lives, x.off, x.off+x.bytes,
							y.name, y.lives, y.off, y.off+y.bytes, x.chunk)
					}
				}
			}
			if a.Bytes() < a.LiveBound() {
				t.Fatalf("Bytes() = %d below the bound %d", a.Bytes(), a.LiveBound())
			}
			t.Logf("%d bytes, bound %d (%.3f×), %d chunks", a.Bytes(), a.LiveBound(), float64(a.Bytes())/float64(max(a.LiveBound(), 1)), len(a.chunks))
		})
	}
}

func TestMergeLives(t *testing.T) {
	for _, c := range []struct{ in, want []Life }{
		{nil, nil},
		{[]Life{{3, 4}, {0, 1}}, []Life{{0, 1}, {3, 4}}},
		{[]Life{{0, 1}, {2, 5}, {4, 6}}, []Life{{0, 6}}},
		{[]Life{{5, 5}, {0, 9}}, []Life{{0, 9}}},
	} {
		got := mergeLives(c.in)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("mergeLives(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
