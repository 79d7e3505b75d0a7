package ref

import "math"

// Sum is Σ_i x_i.
func Sum(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s
}

// SumSquares is Σ_i x_i² and whether any x_i is inf or NaN (the global gradient norm's accumulator).
func SumSquares(x []float64) (sum float64, nonFinite bool) {
	for _, v := range x {
		sum += v * v
		if math.IsInf(v, 0) || math.IsNaN(v) {
			nonFinite = true
		}
	}
	return sum, nonFinite
}

// MaxAbs is max_i |x_i|: 0 for an empty x, NaN when any x_i is NaN.
func MaxAbs(x []float64) float64 {
	m := 0.0
	for _, v := range x {
		if math.IsNaN(v) {
			return math.NaN()
		}
		m = math.Max(m, math.Abs(v))
	}
	return m
}
