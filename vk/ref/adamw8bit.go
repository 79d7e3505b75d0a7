package ref

import (
	"fmt"
	"math"
	"slices"
)

// DynamicMap returns the 256 sorted code values of bitsandbytes' create_dynamic_map(signed,
// max_exponent_bits=7, total_bits=8), the 8-bit dynamic data type of 8-bit Adam (Dettmers et al. 2022).
// Exponent i = 0..6 selects the decade 10^(i−6); within it the fraction takes the K midpoints of
// linspace(0.1, 1, K+1):
//
//	value(i, j) = 10^(i−6) · (0.1 + 0.9·(j+½)/K),  j = 0..K−1,  K = 2^i (signed) or 2^(i+1) (unsigned)
//
// The signed map holds ±value (2·127 codes) plus 0 and 1; the unsigned map holds the 254 values plus 0
// and 1. Sorted ascending, the signed map has 0 at index 127 and −0.99296875 at index 0; both have 1 at 255.
//
// The values are computed with bitsandbytes' float32 arithmetic (torch.linspace's scalar path, then
// (b[j]+b[j+1])/2, then a float32 multiply by float32(10^(i−6))), so they are within an ulp or two of the
// formula above (torch's vectorized linspace can round a few entries differently).
func DynamicMap(signed bool) []float64 {
	var vals []float64
	for i := range 7 {
		k := 1 << (i + 1)
		if signed {
			k = 1 << i
		}
		b := linspace32(0.1, 1, k+1)
		decade := float32(math.Pow(10, float64(i-6)))
		for j := range k {
			mean := float32(b[j]+b[j+1]) / 2
			v := float64(float32(decade * mean))
			vals = append(vals, v)
			if signed {
				vals = append(vals, -v)
			}
		}
	}
	vals = append(vals, 0, 1)
	slices.Sort(vals)
	return vals
}

// linspace32 mirrors torch.linspace for float32 on its scalar path: the first half counts up from start,
// the second half counts down from end, so that both ends are exact.
func linspace32(start, end float32, steps int) []float32 {
	step := (end - start) / float32(steps-1)
	out := make([]float32, steps)
	for i := range out {
		if i < steps/2 {
			out[i] = start + float32(step*float32(i)) // explicit conversions forbid FMA fusion
		} else {
			out[i] = end - float32(step*float32(steps-i-1))
		}
	}
	return out
}

// QuantizeNearest returns the index of the code value nearest to x in the sorted 256-entry map code:
// lo = the largest index with code[lo] ≤ x (0 when x < code[0]), then lo+1 when x is above the
// midpoint float32((float32(code[lo]) + float32(code[lo+1]))·0.5). A tie goes to the lower code. The
// midpoint is rounded exactly as the shader computes it in float32, so that the rule is the same bit
// for bit; only x itself differs between the float64 reference and the float32 shader.
func QuantizeNearest(code []float64, x float64) uint8 {
	if len(code) != 256 {
		panic(fmt.Sprintf("ref: quantize: code map has %d entries, want 256", len(code)))
	}
	lo := 0
	for step := 128; step > 0; step >>= 1 {
		if lo+step < 256 && code[lo+step] <= x {
			lo += step
		}
	}
	if lo < 255 && x > QuantizeMidpoint(code, lo) {
		lo++
	}
	return uint8(lo)
}

// QuantizeMidpoint is the decision boundary between codes lo and lo+1 used by QuantizeNearest.
func QuantizeMidpoint(code []float64, lo int) float64 {
	return float64((float32(code[lo]) + float32(code[lo+1])) * 0.5)
}

// Dequantize8bit expands block-wise 8-bit codes: x[i] = code[q[i]]·scale[i/block].
func Dequantize8bit(x []float64, q []uint8, scale, code []float64, block int) {
	check8bit("dequantize", len(x), len(q), len(scale), block)
	for i := range x {
		x[i] = code[q[i]] * scale[i/block]
	}
}

// Quantize8bit stores x as block-wise 8-bit codes: scale[b] = max |x| over block b, and
// q[i] = QuantizeNearest(code, x[i]/scale[i/block]) (x/scale taken as 0 in an all-zero block).
func Quantize8bit(q []uint8, scale, x, code []float64, block int) {
	check8bit("quantize", len(x), len(q), len(scale), block)
	for b := range scale {
		lo, hi := b*block, min((b+1)*block, len(x))
		absmax := 0.0
		for _, v := range x[lo:hi] {
			absmax = math.Max(absmax, math.Abs(v))
		}
		scale[b] = absmax
		for i := lo; i < hi; i++ {
			r := 0.0
			if absmax > 0 {
				r = x[i] / absmax
			}
			q[i] = QuantizeNearest(code, r)
		}
	}
}

func check8bit(op string, n, nq, nscale, block int) {
	if nq != n || nscale != (n+block-1)/block {
		panic(fmt.Sprintf("ref: %s 8-bit: n=%d, len(q)=%d, len(scale)=%d, block=%d", op, n, nq, nscale, block))
	}
}

// AdamW8bit is AdamW with both moments held as block-wise 8-bit codes (bitsandbytes' blockwise 8-bit
// Adam): m and v are dequantized with the signed map qmap[0:256] and the unsigned map qmap[256:512]
// times their block's absmax scale, updated by AdamW exactly as in the f32 optimizer (the parameter step
// uses the fresh, unquantized moments), then requantized with each block's new absmax:
//
//	m = Dequantize8bit(mq, mScale, qmap[:256]);  v = Dequantize8bit(vq, vScale, qmap[256:])
//	AdamW(p, m, v, g)
//	Quantize8bit(mq, mScale, m, qmap[:256]);     Quantize8bit(vq, vScale, v, qmap[256:])
//
// p, g, mq, vq have n elements; mScale, vScale have ceil(n/block). With Skip ≠ 0 nothing changes.
func AdamW8bit(p []float64, mq, vq []uint8, mScale, vScale, g []float64, h AdamHyper, qmap []float64, decay bool, block int) {
	if len(qmap) != 512 {
		panic(fmt.Sprintf("ref: adamw8bit: qmap has %d entries, want 512", len(qmap)))
	}
	if h.Skip != 0 {
		return
	}
	m := make([]float64, len(p))
	v := make([]float64, len(p))
	Dequantize8bit(m, mq, mScale, qmap[:256], block)
	Dequantize8bit(v, vq, vScale, qmap[256:], block)
	AdamW(p, m, v, g, h, decay)
	Quantize8bit(mq, mScale, m, qmap[:256], block)
	Quantize8bit(vq, vScale, v, qmap[256:], block)
}
