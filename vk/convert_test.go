package vk_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/ref"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// convertBits returns n source bit patterns of dtype dt: every 16-bit pattern in order (repeated), or
// random 32-bit patterns (all exponents, NaNs and denormals included) mixed with values near the f16
// range and rounding ties.
func convertBits(dt vk.DType, n int) []uint32 {
	bits := make([]uint32, n)
	r := rand.New(rand.NewPCG(71, 72))
	for i := range bits {
		switch {
		case dt != vk.F32:
			bits[i] = uint32(i & 0xffff)
		case i%4 == 1: // around the f16 range: 65504 ± a bit, tiny values near 2^-24
			bits[i] = 0x477fe000 + uint32(r.IntN(0x4000)) - 0x2000 | uint32(r.IntN(2))<<31
		case i%4 == 2: // exact ties for f16 and bf16 rounding
			bits[i] = r.Uint32()&^0x1fff | 0x1000
		case i%4 == 3:
			bits[i] = 0x33000000 + uint32(r.IntN(0x2000000))
		default:
			bits[i] = r.Uint32()
		}
	}
	return bits
}

func encodeBits(dt vk.DType, bits []uint32) []byte {
	p := make([]byte, len(bits)*dt.Size())
	for i, b := range bits {
		if dt == vk.F32 {
			binary.LittleEndian.PutUint32(p[4*i:], b)
		} else {
			binary.LittleEndian.PutUint16(p[2*i:], uint16(b))
		}
	}
	return p
}

func decodeBits(dt vk.DType, p []byte) []uint32 {
	bits := make([]uint32, len(p)/dt.Size())
	for i := range bits {
		if dt == vk.F32 {
			bits[i] = binary.LittleEndian.Uint32(p[4*i:])
		} else {
			bits[i] = uint32(binary.LittleEndian.Uint16(p[2*i:]))
		}
	}
	return bits
}

// convertValue is the float64 value of bits of dtype dt.
func convertValue(dt vk.DType, b uint32) float64 {
	switch dt {
	case vk.F16:
		return float64(vk.F16ToF32(uint16(b)))
	case vk.BF16:
		return float64(math.Float32frombits(b << 16))
	}
	return float64(math.Float32frombits(b))
}

// convertWant is the bit pattern Convert must produce: the host's conversions (vk.F32ToF16, F32ToBF16;
// exact widening), which the value check below ties to ref.RoundF16 and ref.RoundBF16.
func convertWant(src, dst vk.DType, b uint32) uint32 {
	if src == dst {
		return b
	}
	f := math.Float32frombits(uint32(convertF32Bits(src, b)))
	switch dst {
	case vk.F16:
		return uint32(vk.F32ToF16(f))
	case vk.BF16:
		return uint32(vk.F32ToBF16(f))
	}
	return math.Float32bits(f)
}

func convertF32Bits(dt vk.DType, b uint32) uint32 {
	switch dt {
	case vk.F16:
		return math.Float32bits(vk.F16ToF32(uint16(b)))
	case vk.BF16:
		return b << 16
	}
	return b
}

func TestConvert(t *testing.T) {
	d := vktest.Device(t)
	if !d.Info.Storage16Bit {
		t.Skipf("device %q has no 16-bit storage buffers", d.Info.Name)
	}
	types := []vk.DType{vk.F32, vk.F16, vk.BF16}
	for _, src := range types {
		for _, dst := range types {
			for _, n := range []int{1, 3, 257, 1 << 16, 2*vk.ElementGranule + 1001} {
				for _, impl := range ewImpls() {
					if impl.chunk != 0 && n <= impl.chunk {
						continue
					}
					t.Run(vktest.Name("src", src, "dst", dst, "n", n, "impl", impl.name), func(t *testing.T) {
						bits := convertBits(src, n)
						x := vktest.Tensor(t, d, src, nil, n)
						if err := d.WriteBytes(x, encodeBits(src, bits)); err != nil {
							t.Fatal(err)
						}
						// Poison: a guard element after y checks that the 16-bit tail writes stay inside y.
						whole := vktest.Poisoned(t, d, dst, n+1)
						y := whole.Slice(0, n)
						s := vktest.Stream(t, d)
						if impl.chunk == 0 {
							vk.Convert(s, y, x)
						} else {
							vk.ConvertChunked(s, y, x, impl.chunk)
						}
						vktest.Run(t, s)
						raw, err := d.ReadBytes(whole)
						if err != nil {
							t.Fatal(err)
						}
						got := decodeBits(dst, raw)
						if guard := convertValue(dst, got[n]); !math.IsNaN(guard) {
							t.Fatalf("Convert %v to %v: element past the end overwritten with %v", src, dst, guard)
						}
						for i, b := range bits {
							want := convertWant(src, dst, b)
							gv, in := convertValue(dst, got[i]), convertValue(src, b)
							if math.IsNaN(in) {
								if !math.IsNaN(gv) {
									t.Fatalf("Convert %v to %v: [%d] NaN %#x became %v", src, dst, i, b, gv)
								}
								continue
							}
							if got[i] != want {
								t.Fatalf("Convert %v to %v: [%d] = %#x (%v) from %#x (%v), want %#x (%v)",
									src, dst, i, got[i], gv, b, in, want, convertValue(dst, want))
							}
							rv := in
							switch dst {
							case vk.F16:
								rv = ref.RoundF16(in)
							case vk.BF16:
								rv = ref.RoundBF16(in)
							}
							if gv != rv && !(gv == 0 && rv == 0) {
								t.Fatalf("Convert %v to %v: [%d] = %v from %v, ref rounds to %v", src, dst, i, gv, in, rv)
							}
						}
						rawX, err := d.ReadBytes(x)
						if err != nil {
							t.Fatal(err)
						}
						for i, b := range decodeBits(src, rawX) {
							if b != bits[i] {
								t.Fatalf("input changed: [%d] = %#x, was %#x", i, b, bits[i])
							}
						}
					})
				}
			}
		}
	}
}
