package vk_test

import (
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

func TestPatchify(t *testing.T) {
	d := vktest.Device(t)
	cases := []struct{ B, C, F, H, W, tt, ps int }{
		{1, 1, 1, 1, 1, 1, 1},
		{2, 3, 2, 32, 48, 2, 16}, // the enc_tiny fixture's video
		{1, 3, 4, 16, 32, 2, 16},
		{3, 2, 6, 9, 6, 3, 3},
	}
	for _, c := range cases {
		t.Run(vktest.Name("B", c.B, "C", c.C, "F", c.F, "H", c.H, "W", c.W, "tt", c.tt, "ps", c.ps), func(t *testing.T) {
			s := vktest.Stream(t, d)
			n := c.B * c.C * c.F * c.H * c.W
			v := vktest.Rand(1, n)
			video := vktest.Tensor(t, d, vk.F32, v, c.B, c.C, c.F, c.H, c.W)
			rows := c.B * (c.F / c.tt) * (c.H / c.ps) * (c.W / c.ps)
			cols := c.C * c.tt * c.ps * c.ps
			out := vktest.Poisoned(t, d, vk.F32, rows, cols)
			vk.Patchify(s, out, video, c.tt, c.ps)
			vktest.Run(t, s)
			want := make([]float64, rows*cols)
			ref.Patchify(want, vktest.F64(v), c.B, c.C, c.F, c.H, c.W, c.tt, c.ps)
			vktest.Close(t, "Patchify", vktest.Download(t, d, out), want, 0, 0) // a pure copy: exact
		})
	}
}
