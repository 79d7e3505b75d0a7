package vk_test

import (
	"slices"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// TestReadWriteF32: WriteF32 and ReadF32 move f32 bits unchanged, into views off the storage alignment
// too, and agree with Upload and Download; other dtypes are refused.
func TestReadWriteF32(t *testing.T) {
	d := vktest.Device(t)
	for _, n := range []int{1, 7, 1 << 16, 1<<20 + 3} {
		whole := vktest.Tensor(t, d, vk.F32, nil, n+3)
		x := whole.Slice(3, n)
		v := vktest.RandN(uint64(n), n)
		if err := d.WriteF32(x, v); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, n)
		if err := d.ReadF32(x, got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, v) || !slices.Equal(vktest.Download(t, d, x), v) {
			t.Fatalf("n=%d: round trip changed the values", n)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("ReadF32 of an f16 tensor did not panic")
		}
	}()
	d.ReadF32(vktest.Tensor(t, d, vk.F16, nil, 4), make([]float32, 4))
}
