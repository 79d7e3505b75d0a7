package ref

import (
	"fmt"
	"math"
	"testing"
)

// TestMurmur3Words checks the mask hash against published MurmurHash3_x86_32 vectors (keys whose length
// is a multiple of 4 bytes, the only kind the mask hashes).
func TestMurmur3Words(t *testing.T) {
	cases := []struct {
		seed  uint32
		words []uint32
		want  uint32
	}{
		{0, nil, 0},
		{1, nil, 0x514e28b7},
		{0xffffffff, nil, 0x81f16f39},
		{0, []uint32{0}, 0x2362f9de},
		{0x9747b28c, []uint32{0x61616161}, 0x5a97808a}, // "aaaa"
	}
	for _, c := range cases {
		if got := murmur3Words(c.seed, c.words...); got != c.want {
			t.Errorf("murmur3Words(seed=%#x, %#x) = %#08x, want %#08x", c.seed, c.words, got, c.want)
		}
	}
}

// TestDropoutKeepFraction checks that the mask keeps 1−p of the elements within 4σ of a binomial, and that
// two salts (two adapters in one step) give masks that agree as often as independent ones would.
func TestDropoutKeepFraction(t *testing.T) {
	const n = 1 << 20
	for _, p := range []float64{0.05, 0.5, 0.9} {
		for _, seed := range []uint32{0, 1, 0xdeadbeef} {
			t.Run(fmt.Sprintf("p=%v,seed=%d", p, seed), func(t *testing.T) {
				kept, agree := 0, 0
				for i := range n {
					a, b := DropoutKeep(seed, 7, i, p), DropoutKeep(seed, 8, i, p)
					if a {
						kept++
					}
					if a == b {
						agree++
					}
				}
				q := 1 - p
				if dev := math.Abs(float64(kept) - q*n); dev > 4*math.Sqrt(n*p*q) {
					t.Errorf("kept %d of %d, want %.0f ± %.0f (4σ)", kept, n, q*n, 4*math.Sqrt(n*p*q))
				}
				pa := p*p + q*q // independent masks agree with this probability
				if dev := math.Abs(float64(agree) - pa*n); dev > 4*math.Sqrt(n*pa*(1-pa)) {
					t.Errorf("salts 7 and 8 agree on %d of %d, want %.0f ± %.0f (4σ)", agree, n, pa*n, 4*math.Sqrt(n*pa*(1-pa)))
				}
			})
		}
	}
}

func TestDropoutThreshold(t *testing.T) {
	for _, c := range []struct {
		p    float64
		want uint32
	}{{0, 0}, {0.5, 1 << 23}, {1.0 / (1 << 24), 1}, {1.5 / (1 << 24), 2}, {math.Nextafter(1, 0), 1 << 24}} {
		if got := DropoutThreshold(c.p); got != c.want {
			t.Errorf("DropoutThreshold(%v) = %d, want %d", c.p, got, c.want)
		}
	}
	for _, p := range []float64{-0.1, 1, math.NaN()} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("DropoutThreshold(%v) did not panic", p)
				}
			}()
			DropoutThreshold(p)
		}()
	}
}

// TestDropoutBackwardFD checks DropoutBackward against central differences of L = Σ w·Dropout(x): the
// map is linear, so the differences are exact up to float64 rounding.
func TestDropoutBackwardFD(t *testing.T) {
	const n, h = 37, 1e-3
	for _, p := range []float64{0, 0.05, 0.5} {
		t.Run(fmt.Sprintf("p=%v", p), func(t *testing.T) {
			x, w := make([]float64, n), make([]float64, n)
			for i := range x {
				x[i], w[i] = math.Sin(float64(i)+0.3), math.Cos(1.7*float64(i))
			}
			loss := func(x []float64) float64 {
				y := make([]float64, n)
				Dropout(y, x, 42, 3, p)
				s := 0.0
				for i := range y {
					s += w[i] * y[i]
				}
				return s
			}
			dx := make([]float64, n)
			DropoutBackward(dx, w, 42, 3, p, false)
			for i := range x {
				xp, xm := append([]float64(nil), x...), append([]float64(nil), x...)
				xp[i] += h
				xm[i] -= h
				fd := (loss(xp) - loss(xm)) / (2 * h)
				if math.Abs(fd-dx[i]) > 1e-9 {
					t.Errorf("DropoutBackward(p=%v): dx[%d] = %.12g, finite difference %.12g (tol 1e-9)", p, i, dx[i], fd)
				}
			}
			acc := make([]float64, n)
			for i := range acc {
				acc[i] = 1
			}
			DropoutBackward(acc, w, 42, 3, p, true)
			for i := range acc {
				if acc[i] != 1+dx[i] {
					t.Fatalf("DropoutBackward(p=%v, accumulate): dx[%d] = %v, want 1 + %v", p, i, acc[i], dx[i])
				}
			}
		})
	}
}
