package vk_test

import (
	"testing"
	"time"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

func TestSmokeTiming(t *testing.T) {
	d := vktest.Device(t)
	n := 1 << 22
	x := vktest.Tensor(t, d, vk.F32, vktest.RandN(1, n), n)
	y := vktest.Poisoned(t, d, vk.F32, n)
	for _, name := range []string{"gelu", "add", "ln"} {
		s := vktest.Stream(t, d)
		switch name {
		case "gelu":
			vk.Gelu(s, y, x)
		case "add":
			vk.Add(s, y, x, x)
		case "ln":
			m := vktest.Tensor(t, d, vk.F32, nil, n/1024)
			r := vktest.Tensor(t, d, vk.F32, nil, n/1024)
			vk.LayerNorm(s, y.Reshape(n/1024, 1024), m, r, x.Reshape(n/1024, 1024), vk.Tensor{}, vk.Tensor{}, 1e-5)
		}
		vktest.Run(t, s)
		t0 := time.Now()
		vktest.Run(t, s)
		dt := time.Since(t0)
		t.Logf("%s: %v, %.2f GB/s", name, dt, float64(8*n)/dt.Seconds()/1e9)
	}
}
