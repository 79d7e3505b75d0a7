package vk_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// reduceImpl is one of Sum, SumSquares, MaxAbs: public or chunked.
type reduceImpl struct {
	name    string
	public  func(s *vk.Stream, out, x, ws vk.Tensor)
	chunked func(s *vk.Stream, out, x, ws vk.Tensor, chunk int)
}

var reduceImpls = []reduceImpl{
	{"Sum", vk.Sum, vk.SumChunked},
	{"SumSquares", vk.SumSquares, vk.SumSquaresChunked},
	{"MaxAbs", vk.MaxAbs, vk.MaxAbsChunked},
}

// reduceRun records one reduction of xv into a fresh output (SumSquares: acc = (acc0, 0)), runs it and
// returns the output.
func reduceRun(t *testing.T, d *vk.Device, op reduceImpl, chunk int, xv []float32, acc0 float32) []float32 {
	t.Helper()
	n := len(xv)
	x := vktest.Tensor(t, d, vk.F32, xv, n)
	ws := vktest.Poisoned(t, d, vk.F32, vk.ReduceWorkspaceSize(n))
	out := vktest.Poisoned(t, d, vk.F32, 1)
	if op.name == "SumSquares" {
		out = vktest.Tensor(t, d, vk.F32, []float32{acc0, 0}, 2)
	}
	s := vktest.Stream(t, d)
	if chunk == 0 {
		op.public(s, out, x, ws)
	} else {
		op.chunked(s, out, x, ws, chunk)
	}
	vktest.Run(t, s)
	ewUnchanged(t, d, "x", x, xv)
	return vktest.Download(t, d, out)
}

func TestReduce(t *testing.T) {
	d := vktest.Device(t)
	for _, op := range reduceImpls {
		for _, n := range append([]int{0}, l1Sizes()...) {
			for _, impl := range ewImpls() {
				t.Run(vktest.Name("op", op.name, "n", n, "impl", impl.name), func(t *testing.T) {
					xv := vktest.RandN(61, n)
					for i := range xv {
						xv[i] += 0.5 // a mean, so that Σx grows like n
					}
					got := reduceRun(t, d, op, impl.chunk, xv, 1.5)
					x := vktest.F64(xv)
					// Float32 sums: ε·(64 sequential terms + tree depth) relative to Σ|terms| at worst.
					sumAbs := 0.0
					for _, v := range x {
						sumAbs += math.Abs(v)
					}
					switch op.name {
					case "Sum":
						vktest.Close(t, "Sum", got, []float64{ref.Sum(x)}, 0, 1e-6*sumAbs+1e-30)
					case "SumSquares":
						ss, nonFinite := ref.SumSquares(x)
						if nonFinite {
							t.Fatal("finite input reported non-finite by the reference")
						}
						vktest.Close(t, "SumSquares", got, []float64{1.5 + ss, 0}, 1e-6, 0)
					case "MaxAbs":
						// Exact: max is a selection.
						vktest.Close(t, "MaxAbs", got, []float64{ref.MaxAbs(x)}, 0, 0)
					}
					// Deterministic across the split: the partials do not depend on it.
					other := 0
					if impl.chunk == 0 {
						other = vk.ElementGranule
					}
					again := reduceRun(t, d, op, other, xv, 1.5)
					for i := range got {
						if math.Float32bits(again[i]) != math.Float32bits(got[i]) {
							t.Errorf("%s(n=%d): %v with one split, %v with another", op.name, n, got, again)
						}
					}
				})
			}
		}
	}
}

// TestReduceNonFinite plants inf and NaN: SumSquares flags them in acc[1], MaxAbs reports NaN or inf.
func TestReduceNonFinite(t *testing.T) {
	d := vktest.Device(t)
	n := 3*vk.ReducePartial + 5
	for _, c := range []struct {
		name      string
		bad       float32
		wantMax   float64
		wantSumSq float64
	}{
		{"inf", float32(math.Inf(-1)), math.Inf(1), math.Inf(1)},
		{"nan", float32(math.NaN()), math.NaN(), math.NaN()},
	} {
		t.Run(vktest.Name("value", c.name), func(t *testing.T) {
			xv := vktest.RandN(62, n)
			xv[2*vk.ReducePartial+3] = c.bad
			got := reduceRun(t, d, reduceImpls[1], 0, xv, 0)
			vktest.Close(t, "SumSquares", got, []float64{c.wantSumSq, 1}, 0, 0)
			got = reduceRun(t, d, reduceImpls[2], 0, xv, 0)
			vktest.Close(t, "MaxAbs", got, []float64{c.wantMax}, 0, 0)
		})
	}
	// A finite tensor after a bad one leaves the flag set: acc is never reset by SumSquares.
	acc := vktest.Tensor(t, d, vk.F32, []float32{0, 0}, 2)
	bad := vktest.Tensor(t, d, vk.F32, []float32{1, float32(math.Inf(1))}, 2)
	good := vktest.Tensor(t, d, vk.F32, []float32{3, 4}, 2)
	ws := vktest.Tensor(t, d, vk.F32, nil, vk.ReduceWorkspaceSize(2))
	ws2 := vktest.Tensor(t, d, vk.F32, nil, vk.ReduceWorkspaceSize(2))
	s := vktest.Stream(t, d)
	vk.SumSquares(s, acc, good, ws)
	vk.SumSquares(s, acc, bad, ws2)
	vk.SumSquares(s, acc, good, ws)
	vktest.Run(t, s)
	vktest.Close(t, "SumSquares(good, bad, good)", vktest.Download(t, d, acc), []float64{math.Inf(1), 1}, 0, 0)
}

// BenchmarkSumSquares reports the bandwidth of reading x (one gradient tensor of the predictor's fc1).
func BenchmarkSumSquares(b *testing.B) {
	d := vktest.Device(b)
	n := 4096 * 1024
	x := vktest.Tensor(b, d, vk.F32, vktest.RandN(1, n), n)
	ws := vktest.Tensor(b, d, vk.F32, nil, vk.ReduceWorkspaceSize(n))
	acc := vktest.Tensor(b, d, vk.F32, []float32{0, 0}, 2)
	s := vktest.Stream(b, d)
	vk.SumSquares(s, acc, x, ws)
	ewBench(b, s, 4*n)
}
