package ref

import "math"

// Gelu is the exact (erf) GELU of spec §2.1, elementwise:
//
//	y = x·Φ(x) = 0.5·x·(1 + erf(x/√2))
//
// evaluated as 0.5·x·erfc(−x/√2), the same value without the cancellation of 1 + erf in the left tail.
func Gelu(y, x []float64) {
	wantLen("Gelu", "y", len(y), len(x))
	for i, v := range x {
		y[i] = v * NormalCDF(v)
	}
}

// GeluBackward is dx = dy·gelu'(x), overwritten, with gelu'(x) = Φ(x) + x·φ(x), φ(x) = e^{−x²/2}/√(2π).
func GeluBackward(dx, dy, x []float64) {
	wantLen("GeluBackward", "dx", len(dx), len(x))
	wantLen("GeluBackward", "dy", len(dy), len(x))
	for i, v := range x {
		dx[i] = dy[i] * (NormalCDF(v) + v*NormalPDF(v))
	}
}

// NormalCDF is Φ(x) = 0.5·(1 + erf(x/√2)) = 0.5·erfc(−x/√2).
func NormalCDF(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }

// NormalPDF is φ(x) = e^{−x²/2}/√(2π).
func NormalPDF(x float64) float64 { return math.Exp(-x*x/2) / math.Sqrt(2*math.Pi) }
