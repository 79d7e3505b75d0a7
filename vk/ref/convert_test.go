package ref

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"
)

func TestRoundF16(t *testing.T) {
	for _, c := range []struct{ x, want float64 }{
		{0, 0}, {1, 1}, {-2, -2}, {65504, 65504}, {65519, 65504}, {65520, 65504}, {1e9, 65504}, {-1e9, -65504},
		{math.Inf(1), math.Inf(1)}, {0x1p-24, 0x1p-24}, {0x1p-25, 0}, {0x1.8p-25, 0x1p-24}, {0x1.8p-24, 0x1p-23},
		{1 + 0x1p-11, 1}, {1 + 3*0x1p-11, 1 + 0x1p-9}, {0x1p-14 + 0x1p-25, 0x1p-14},
	} {
		if got := RoundF16(c.x); got != c.want {
			t.Errorf("RoundF16(%g) = %g, want %g", c.x, got, c.want)
		}
	}
	if !math.IsNaN(RoundF16(math.NaN())) {
		t.Error("RoundF16(NaN) is not NaN")
	}
	// An independent implementation (github.com/x448/float16, IEEE round to nearest even) agrees on random
	// float32 values within the half range.
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		x := math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(x)) || math.Abs(float64(x)) > 65504 {
			continue
		}
		want := float64(float16.Fromfloat32(x).Float32())
		if got := RoundF16(float64(x)); got != want {
			t.Fatalf("RoundF16(%g) = %g, float16.Fromfloat32 gives %g", x, got, want)
		}
	}
}

func TestRoundBF16(t *testing.T) {
	for _, c := range []struct{ x, want float64 }{
		{0, 0}, {1, 1}, {1 + 0x1p-8, 1}, {1 + 3*0x1p-8, 1 + 0x1p-6}, {-3, -3}, {0x1p-133, 0x1p-133},
		{0x1p-134, 0}, {math.MaxFloat32, math.Inf(1)}, {0x1.fep127, 0x1.fep127}, {-math.MaxFloat32, math.Inf(-1)},
	} {
		if got := RoundBF16(c.x); got != c.want {
			t.Errorf("RoundBF16(%g) = %g, want %g", c.x, got, c.want)
		}
	}
}
