package vk_test

import (
	"math"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

func TestFill(t *testing.T) {
	d := vktest.Device(t)
	for _, n := range []int{1, 255, 256, 257, 1009, 70000 * 256} {
		if testing.Short() && n > 1<<20 {
			continue
		}
		t.Run(vktest.Name("n", n), func(t *testing.T) {
			s := vktest.Stream(t, d)
			y := vktest.Poisoned(t, d, vk.F32, n)
			vk.Fill(s, y, 1.5)
			vktest.Run(t, s)
			got := vktest.Download(t, d, y)
			want := make([]float64, n)
			for i := range want {
				want[i] = 1.5
			}
			vktest.Close(t, "Fill", got, want, 0, 0)
		})
	}
}

// TestStreamReplay checks that a recording replays: the second Run re-executes every dispatch.
func TestStreamReplay(t *testing.T) {
	d := vktest.Device(t)
	s := vktest.Stream(t, d)
	y := vktest.Poisoned(t, d, vk.F32, 10)
	vk.Fill(s, y, 2)
	vktest.Run(t, s)
	if err := d.Upload(y, vktest.NaNs(10)); err != nil {
		t.Fatal(err)
	}
	vktest.Run(t, s)
	got := vktest.Download(t, d, y)
	for i, v := range got {
		if v != 2 {
			t.Fatalf("replay: y[%d] = %v, want 2", i, v)
		}
	}
	if dispatches, barriers := s.Stats(); dispatches != 1 || barriers != 0 {
		t.Errorf("stats: %d dispatches, %d barriers; want 1, 0", dispatches, barriers)
	}
}

// TestStreamBarriers checks hazard tracking: writes to disjoint tensors need no barrier; a second write
// to the same tensor (WAW) needs one.
func TestStreamBarriers(t *testing.T) {
	d := vktest.Device(t)
	s := vktest.Stream(t, d)
	a := vktest.Tensor(t, d, vk.F32, nil, 64)
	b := vktest.Tensor(t, d, vk.F32, nil, 64)
	vk.Fill(s, a, 1)
	vk.Fill(s, b, 2)
	if _, barriers := s.Stats(); barriers != 0 {
		t.Fatalf("disjoint writes recorded %d barriers, want 0", barriers)
	}
	vk.Fill(s, a, 3)
	if _, barriers := s.Stats(); barriers != 1 {
		t.Fatalf("write after write recorded %d barriers, want 1", barriers)
	}
	vktest.Run(t, s)
	if got := vktest.Download(t, d, a); got[0] != 3 {
		t.Fatalf("a[0] = %v, want 3", got[0])
	}
}

func TestF16Conversion(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{
		{0, 0}, {1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {65520, 0x7bff}, {1e9, 0x7bff}, {-1e9, 0xfbff},
		{float32(math.Inf(1)), 0x7c00}, {5.960464477539063e-08, 0x0001}, {2.98e-08, 0x0000},
		{1 + 1.0/2048, 0x3c00}, {1 + 3.0/2048, 0x3c02}, // ties to even
	}
	for _, c := range cases {
		if got := vk.F32ToF16(c.in); got != c.want {
			t.Errorf("F32ToF16(%g) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	for h := 0; h < 0x7c00; h++ { // every finite positive half round-trips
		if got := vk.F32ToF16(vk.F16ToF32(uint16(h))); got != uint16(h) {
			t.Fatalf("round trip %#04x -> %g -> %#04x", h, vk.F16ToF32(uint16(h)), got)
		}
	}
	if got := vk.F32ToBF16(1 + 1.0/256); got != 0x3f80 { // tie to even
		t.Errorf("F32ToBF16(1+2^-8) = %#04x, want 0x3f80", got)
	}
}
