package ref

import (
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestGeluValues checks Gelu = x·Φ(x) against tabulated values of the normal CDF: Φ(1) = 0.841344746068543,
// Φ(3) = 0.998650101968370, Φ(0.5) = 0.691462461274013, Φ(−10) = 7.61985302416047e-24.
func TestGeluValues(t *testing.T) {
	for _, c := range []struct{ x, want float64 }{
		{0, 0}, {1, 0.841344746068543}, {-1, -(1 - 0.841344746068543)}, {3, 3 * 0.998650101968370},
		{-3, -3 * (1 - 0.998650101968370)}, {0.5, 0.5 * 0.691462461274013}, {-10, -10 * 7.61985302416047e-24},
	} {
		y := []float64{0}
		Gelu(y, []float64{c.x})
		// The table has 15 significant digits; 1 − Φ(3) loses three of them.
		if math.Abs(y[0]-c.want) > 1e-14*math.Max(1, math.Abs(c.want)) && math.Abs(y[0]/c.want-1) > 1e-11 {
			t.Errorf("Gelu(%v) = %.17g, want %.17g", c.x, y[0], c.want)
		}
	}
}

// TestGeluBackwardFD checks GeluBackward against central differences of L = Σ gelu(x)∘g.
func TestGeluBackwardFD(t *testing.T) {
	x, g := randSlice(8, 64), randSlice(9, 64)
	for i := range x {
		x[i] *= 3
	}
	dx := make([]float64, len(x))
	GeluBackward(dx, g, x)
	checkFD(t, "GeluBackward", func(x []float64) float64 {
		y := make([]float64, len(x))
		Gelu(y, x)
		return dot(y, g)
	}, x, dx, 1e-9)
}

// erfcx is e^{u²}·erfc(u), the scaled complementary error function.
func erfcx(u float64) float64 { return math.Exp(u*u) * math.Erfc(u) }

// TestGeluTailTable checks the float32 coefficient table of shaders/gelu.glsl: on each octave
// [2^(i−1), 2^i), i = 0..4, the degree-9 polynomial G(s), s = 2·(u/2^(i−1) − 1.5), approximates u·erfcx(u)
// to a relative 1e-7 in float64, and the table is what fitGeluTail (the fit that produced it) gives,
// rounded to float32.
func TestGeluTailTable(t *testing.T) {
	src, err := os.ReadFile("../../shaders/gelu.glsl")
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	begin, end := strings.Index(text, "BEGIN GELU_TAIL_G"), strings.Index(text, "END GELU_TAIL_G")
	if begin < 0 || end < begin {
		t.Fatal("shaders/gelu.glsl: no BEGIN/END GELU_TAIL_G markers")
	}
	body := regexp.MustCompile(`//[^\n]*`).ReplaceAllString(text[begin+len("BEGIN GELU_TAIL_G"):end], "")
	var table []float64
	for _, f := range regexp.MustCompile(`-?[0-9][0-9.]*(e-?[0-9]+)?`).FindAllString(body, -1) {
		v, err := strconv.ParseFloat(f, 32)
		if err != nil {
			t.Fatalf("shaders/gelu.glsl: coefficient %q: %v", f, err)
		}
		table = append(table, v)
	}
	if len(table) != 50 {
		t.Fatalf("shaders/gelu.glsl: %d coefficients, want 50", len(table))
	}
	for i := 0; i < 5; i++ {
		lo := math.Ldexp(1, i-1)
		c := table[10*i : 10*i+10]
		worst := 0.0
		for k := 0; k <= 4000; k++ {
			u := lo * (1 + float64(k)/4000)
			s := 2 * (u/lo - 1.5)
			g := 0.0
			for j := 9; j >= 0; j-- {
				g = g*s + c[j]
			}
			worst = math.Max(worst, math.Abs(g/(u*erfcx(u))-1))
		}
		if worst > 1e-7 {
			t.Errorf("octave [%g, %g): max relative error %.3g > 1e-7", lo, 2*lo, worst)
		}
		fit := fitGeluTail(lo)
		for j := range c {
			if f := float64(float32(fit[j])); math.Abs(f-c[j]) > math.Abs(f)*0x1p-23 {
				t.Errorf("octave [%g, %g): coefficient %d = %.9g, the fit gives %.9g", lo, 2*lo, j, c[j], f)
			}
		}
	}
}

// fitGeluTail fits the degree-9 polynomial G(s) ≈ u·erfcx(u), u = lo·(1.5 + s/2), s ∈ [−1, 1], minimizing
// the relative error in the least-squares sense over 2000 Chebyshev nodes (Householder QR).
func fitGeluTail(lo float64) []float64 {
	const deg, nodes = 9, 2000
	a := make([][]float64, nodes)
	rhs := make([]float64, nodes)
	for k := range a {
		s := math.Cos(math.Pi * (float64(k) + 0.5) / nodes)
		u := lo * (1.5 + s/2)
		f := u * erfcx(u)
		a[k] = make([]float64, deg+1)
		p := 1.0
		for j := range a[k] {
			a[k][j] = p / f
			p *= s
		}
		rhs[k] = 1
	}
	return leastSquares(a, rhs)
}

// leastSquares solves min ‖a·x − b‖₂ by Householder QR.
func leastSquares(a [][]float64, b []float64) []float64 {
	m, n := len(a), len(a[0])
	for k := 0; k < n; k++ {
		norm := 0.0
		for i := k; i < m; i++ {
			norm += a[i][k] * a[i][k]
		}
		norm = math.Sqrt(norm)
		if a[k][k] > 0 {
			norm = -norm
		}
		v := make([]float64, m)
		v[k] = a[k][k] - norm
		for i := k + 1; i < m; i++ {
			v[i] = a[i][k]
		}
		vv := 0.0
		for i := k; i < m; i++ {
			vv += v[i] * v[i]
		}
		reflect := func(col func(i int) *float64) {
			d := 0.0
			for i := k; i < m; i++ {
				d += v[i] * *col(i)
			}
			f := 2 * d / vv
			for i := k; i < m; i++ {
				*col(i) -= f * v[i]
			}
		}
		for j := k; j < n; j++ {
			reflect(func(i int) *float64 { return &a[i][j] })
		}
		reflect(func(i int) *float64 { return &b[i] })
	}
	x := make([]float64, n)
	for i := n - 1; i >= 0; i-- {
		s := b[i]
		for j := i + 1; j < n; j++ {
			s -= a[i][j] * x[j]
		}
		x[i] = s / a[i][i]
	}
	return x
}
