package ref

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// dynamicMapFormula is create_dynamic_map in exact arithmetic (see DynamicMap), rounded once to float32.
func dynamicMapFormula(signed bool) map[float64]bool {
	vals := map[float64]bool{0: true, 1: true}
	for i := range 7 {
		k := 1 << (i + 1)
		if signed {
			k = 1 << i
		}
		for j := range k {
			v := math.Pow(10, float64(i-6)) * (0.1 + 0.9*(float64(j)+0.5)/float64(k))
			vals[float64(float32(v))] = true
			if signed {
				vals[-float64(float32(v))] = true
			}
		}
	}
	return vals
}

// TestDynamicMap checks both maps against values derived by hand from bitsandbytes' create_dynamic_map
// and, entry by entry, against the exact formula: the float32 arithmetic of bitsandbytes may round an
// entry differently, by at most 2 ulp.
func TestDynamicMap(t *testing.T) {
	golden := []struct {
		signed bool
		index  int
		want   float64
	}{
		{true, 0, -0.99296875}, // −(1 − 0.9/128): top midpoint of linspace(0.1, 1, 65)
		{true, 126, -5.5e-7},   // −1e-6·(0.1+1)/2
		{true, 127, 0},
		{true, 128, 5.5e-7},
		{true, 129, 1e-5 * 0.325}, // decade 1e-5: midpoints of linspace(0.1, 1, 3) = 0.325, 0.775
		{true, 130, 1e-5 * 0.775},
		{true, 254, 0.99296875},
		{true, 255, 1},
		{false, 0, 0},
		{false, 1, 1e-6 * 0.325},
		{false, 2, 1e-6 * 0.775},
		{false, 3, 1e-5 * 0.2125}, // decade 1e-5: linspace(0.1, 1, 5) midpoints 0.2125, 0.4375, …
		{false, 254, 0.996484375}, // 1 − 0.9/256
		{false, 255, 1},
	}
	maps := map[bool][]float64{true: DynamicMap(true), false: DynamicMap(false)}
	for _, g := range golden {
		got := maps[g.signed][g.index]
		if math.Abs(got-g.want) > 1e-7*math.Abs(g.want) {
			t.Errorf("DynamicMap(signed=%v)[%d] = %.9g, want %.9g", g.signed, g.index, got, g.want)
		}
	}
	for _, signed := range []bool{true, false} {
		name := fmt.Sprintf("DynamicMap(signed=%v)", signed)
		code := maps[signed]
		if len(code) != 256 {
			t.Fatalf("%s: %d entries, want 256", name, len(code))
		}
		exact := dynamicMapFormula(signed)
		differ := 0
		perDecade := map[int]int{}
		for i, c := range code {
			if i > 0 && c <= code[i-1] {
				t.Errorf("%s: not strictly increasing at %d: %g after %g", name, i, c, code[i-1])
			}
			if c != float64(float32(c)) {
				t.Errorf("%s[%d] = %.17g is not a float32", name, i, c)
			}
			if !exact[c] {
				differ++
				ulp := float64(math.Nextafter32(float32(math.Abs(c)), 2) - float32(math.Abs(c)))
				near := false
				for d := -2; d <= 2; d++ {
					near = near || exact[c+float64(d)*ulp]
				}
				if !near {
					t.Errorf("%s[%d] = %.9g is not within 2 ulp of the exact formula", name, i, c)
				}
			}
			if c > 0 && c < 1 {
				perDecade[int(math.Floor(math.Log10(c)))]++
			}
		}
		t.Logf("%s: %d of 256 entries differ from the once-rounded formula by 1-2 ulp", name, differ)
		for dec := -7; dec <= -1; dec++ {
			want := 1 << (dec + 7) // signed: 2^i per sign for decade 10^(i−6)·[0.1, 1)
			if !signed {
				want *= 2
			}
			if perDecade[dec] != want {
				t.Errorf("%s: %d positive codes in [1e%d, 1e%d), want %d", name, perDecade[dec], dec, dec+1, want)
			}
		}
	}
}

// TestQuantizeNearest checks the nearest-code rule against brute force over all 256 codes: every code
// value maps to itself, and a random x maps to a code at minimal distance unless x sits within float32
// rounding of a midpoint, where either neighbour is nearest.
func TestQuantizeNearest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, signed := range []bool{true, false} {
		code := DynamicMap(signed)
		for i, c := range code {
			if got := QuantizeNearest(code, c); int(got) != i {
				t.Errorf("QuantizeNearest(signed=%v, %g) = %d, want %d", signed, c, got, i)
			}
		}
		for range 100000 {
			x := math.Pow(10, -8*r.Float64()) // log-uniform over the map's 8 decades
			if signed && r.IntN(2) == 0 {
				x = -x
			}
			got := QuantizeNearest(code, x)
			best := 0
			for j := range code {
				if math.Abs(x-code[j]) < math.Abs(x-code[best]) {
					best = j
				}
			}
			if int(got) != best {
				dGot, dBest := math.Abs(x-code[got]), math.Abs(x-code[best])
				if dGot-dBest > 1e-7*math.Abs(x) {
					t.Fatalf("QuantizeNearest(signed=%v, %.9g) = %d (%.9g), nearest is %d (%.9g)",
						signed, x, got, code[got], best, code[best])
				}
			}
		}
		if got := QuantizeNearest(code, 2); got != 255 {
			t.Errorf("QuantizeNearest(signed=%v, 2) = %d, want 255 (clamped)", signed, got)
		}
		if got := QuantizeNearest(code, -2); got != 0 {
			t.Errorf("QuantizeNearest(signed=%v, -2) = %d, want 0 (clamped)", signed, got)
		}
	}
}

// TestQuantize8bitRoundTrip checks the block-wise round trip error: each value comes back within half the
// largest code gap (0.9/128 near 1 for the signed map) times its block's absmax, the block's absmax value
// itself comes back exactly (code 1.0) when positive, and an all-zero block decodes to zeros.
func TestQuantize8bitRoundTrip(t *testing.T) {
	const block, n = 256, 1000
	code := DynamicMap(true)
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float64, n)
	for i := range x {
		x[i] = r.NormFloat64() * math.Pow(10, float64(i/256-2))
	}
	for i := 512; i < 768; i++ {
		x[i] = 0
	}
	x[10] = 100 // positive outlier: absmax of block 0
	q := make([]uint8, n)
	scale := make([]float64, (n+block-1)/block)
	Quantize8bit(q, scale, x, code, block)
	y := make([]float64, n)
	Dequantize8bit(y, q, scale, code, block)
	if y[10] != 100 || q[10] != 255 {
		t.Errorf("round trip of the block absmax: %g (code %d), want 100 (code 255)", y[10], q[10])
	}
	for i := range x {
		if d := math.Abs(y[i] - x[i]); d > 0.5*0.9/64*scale[i/block] {
			t.Errorf("round trip [%d]: %g -> %g (err %.3g > half the widest gap %.3g)", i, x[i], y[i], d, 0.5*0.9/64*scale[i/block])
		}
	}
	if scale[2] != 0 || y[600] != 0 {
		t.Errorf("all-zero block: scale %g, value %g; want 0, 0", scale[2], y[600])
	}
}

// TestAdamW8bitFirstStep checks that from a fresh state (zero scales) the 8-bit step moves the
// parameters exactly as AdamW does, since the update uses the fresh moments before they are quantized.
func TestAdamW8bitFirstStep(t *testing.T) {
	const n, block = 300, 256
	qmap := append(DynamicMap(true), DynamicMap(false)...)
	p8, p32 := make([]float64, n), make([]float64, n)
	g := make([]float64, n)
	for i := range g {
		p8[i] = math.Sin(float64(i))
		p32[i] = p8[i]
		g[i] = math.Cos(float64(3 * i))
	}
	mq, vq := make([]uint8, n), make([]uint8, n)
	ms, vs := make([]float64, 2), make([]float64, 2)
	h := specHyper(1, 1e-3, 1)
	AdamW8bit(p8, mq, vq, ms, vs, g, h, qmap, true, block)
	AdamW(p32, make([]float64, n), make([]float64, n), g, h, true)
	for i := range p8 {
		if p8[i] != p32[i] {
			t.Fatalf("AdamW8bit step 1: p[%d] = %.17g, want AdamW's %.17g", i, p8[i], p32[i])
		}
	}
	if ms[0] == 0 || vs[1] == 0 {
		t.Errorf("AdamW8bit step 1: scales %v, %v not set", ms, vs)
	}
}
