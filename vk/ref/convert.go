package ref

import "math"

// RoundF16 is x rounded to the nearest IEEE half (ties to even), the value vk.Convert stores for an f32 x:
// finite values beyond the largest half saturate to ±65504 rather than becoming inf (an activation just
// over the range stays finite), and inf and NaN are kept. Halves are spaced 2^(e−10) in [2^e, 2^(e+1)) for
// e ≥ −14 and 2^−24 below 2^−14 (subnormals).
func RoundF16(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	if math.Abs(x) > 65504 {
		return math.Copysign(65504, x)
	}
	return roundToSpacing(x, 10, -14)
}

// RoundBF16 is x rounded to the nearest bfloat16 (8 significant bits, f32's exponent range; ties to even);
// values that round past the largest bfloat16 become ±inf, as in IEEE rounding; inf and NaN are kept.
func RoundBF16(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	r := roundToSpacing(x, 7, -126)
	if math.Abs(r) >= math.Ldexp(1, 128) {
		return math.Inf(int(math.Copysign(1, x)))
	}
	return r
}

// roundToSpacing rounds x to a binary format with mant explicit mantissa bits and minimum normal exponent
// minExp, ties to even.
func roundToSpacing(x float64, mant, minExp int) float64 {
	if x == 0 {
		return x
	}
	_, e := math.Frexp(math.Abs(x)) // |x| in [2^(e−1), 2^e)
	e = max(e-1, minExp)
	q := math.Ldexp(1, e-mant)
	return math.Copysign(math.RoundToEven(math.Abs(x)/q)*q, x)
}
