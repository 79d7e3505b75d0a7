package vk_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

func TestBiasGradient(t *testing.T) {
	d := vktest.Device(t)
	type bgCase struct{ rows, n, chunk int }
	var cases []bgCase
	for _, rows := range []int{1, 15, 16, 17, 255, 1009} {
		for _, n := range []int{1, 7, 16, 17, 1024, 1408, 4096} {
			cases = append(cases, bgCase{rows, n, 0})
		}
	}
	cases = append(cases, bgCase{1009, 96, 64}, bgCase{8256, 1024, 0})
	worst := 0.0
	defer func() { t.Logf("max abs error %.3g", worst) }()
	for _, c := range cases {
		if testing.Short() && c.rows*c.n > 1<<21 {
			continue
		}
		t.Run(vktest.Name("rows", c.rows, "n", c.n, "chunk", c.chunk), func(t *testing.T) {
			dyv, db0 := vktest.RandN(41, c.rows*c.n), vktest.RandN(42, c.n)
			dy := vktest.Tensor(t, d, vk.F32, dyv, c.rows, c.n)
			db := vktest.Tensor(t, d, vk.F32, db0, c.n)
			s := vktest.Stream(t, d)
			if c.chunk == 0 {
				vk.BiasGradient(s, db, dy)
			} else {
				vk.BiasGradientChunked(s, db, dy, c.chunk)
			}
			vktest.Run(t, s)
			want := vktest.F64(db0)
			ref.BiasGradient(want, vktest.F64(dyv), c.rows, c.n)
			// Each of 16 lanes sums rows/16 standard-normal terms in sequence: partial sums of size ~√k
			// rounded with ε = 6e-8 give a random walk of ε·rows/(16√2) per lane, ε·rows/(4√2) over the
			// lanes; the worst of n columns lies ~4σ out: ~4e-8·rows.
			e := vktest.Close(t, "BiasGradient", vktest.Download(t, d, db), want, 1e-6, 1e-6+4e-8*float64(c.rows))
			worst = math.Max(worst, e)
			ewUnchanged(t, d, "dy", dy, dyv)
		})
	}
}

// TestBiasGradientDeterministic checks that two runs give the same bits (no atomics, fixed order).
func TestBiasGradientDeterministic(t *testing.T) {
	d := vktest.Device(t)
	rows, n := 1009, 1024
	dy := vktest.Tensor(t, d, vk.F32, vktest.RandN(43, rows*n), rows, n)
	var got [2][]float32
	for i := range got {
		db := vktest.Tensor(t, d, vk.F32, make([]float32, n), n)
		s := vktest.Stream(t, d)
		vk.BiasGradient(s, db, dy)
		vktest.Run(t, s)
		got[i] = vktest.Download(t, d, db)
	}
	for j := range got[0] {
		if math.Float32bits(got[0][j]) != math.Float32bits(got[1][j]) {
			t.Fatalf("BiasGradient(rows=%d,n=%d): db[%d] = %v then %v", rows, n, j, got[0][j], got[1][j])
		}
	}
}
