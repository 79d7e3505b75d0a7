package ref

import (
	"fmt"
	"math"
)

// LayerNorm normalizes each row of x [rows, dim] (spec §2.4; without w and b, the parameter-free LN₀ of
// spec §2.3 step 7 and §6.1):
//
//	mean = Σ_j x_j / dim,   var = Σ_j (x_j − mean)² / dim   (biased),   rstd = 1/sqrt(var + eps)
//	y_j  = (x_j − mean)·rstd·w_j + b_j                      (w = 1, b = 0 when w and b are nil)
//
// and stores mean and rstd [rows] for LayerNormBackward.
func LayerNorm(y, mean, rstd, x, w, b []float64, rows, dim int, eps float64) {
	wantLen("LayerNorm", "y", len(y), rows*dim)
	wantLen("LayerNorm", "x", len(x), rows*dim)
	wantLen("LayerNorm", "mean", len(mean), rows)
	wantLen("LayerNorm", "rstd", len(rstd), rows)
	checkAffine("LayerNorm", w, b, dim)
	for r := 0; r < rows; r++ {
		row := x[r*dim : (r+1)*dim]
		m := 0.0
		for _, v := range row {
			m += v
		}
		m /= float64(dim)
		v := 0.0
		for _, xv := range row {
			v += (xv - m) * (xv - m)
		}
		v /= float64(dim)
		mean[r], rstd[r] = m, 1/math.Sqrt(v+eps)
		for j, xv := range row {
			yv := (xv - m) * rstd[r]
			if w != nil {
				yv = yv*w[j] + b[j]
			}
			y[r*dim+j] = yv
		}
	}
}

// LayerNormBackward is the gradient of LayerNorm, given dy, the input x and the saved mean and rstd. Per
// row, with x̂_j = (x_j − mean)·rstd and g_j = dy_j·w_j (g = dy when w is nil):
//
//	dx_j  = rstd·(g_j − Σ_k g_k/dim − x̂_j·Σ_k g_k·x̂_k/dim)   overwritten, or added when accumulate
//	dw_j += Σ_rows dy_j·x̂_j,   db_j += Σ_rows dy_j            always accumulated; skipped when w is nil
func LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd []float64, rows, dim int, accumulate bool) {
	wantLen("LayerNormBackward", "dx", len(dx), rows*dim)
	wantLen("LayerNormBackward", "dy", len(dy), rows*dim)
	wantLen("LayerNormBackward", "x", len(x), rows*dim)
	wantLen("LayerNormBackward", "mean", len(mean), rows)
	wantLen("LayerNormBackward", "rstd", len(rstd), rows)
	if w != nil {
		wantLen("LayerNormBackward", "w", len(w), dim)
		checkAffine("LayerNormBackward", dw, db, dim)
	}
	xhat := make([]float64, dim)
	g := make([]float64, dim)
	for r := 0; r < rows; r++ {
		sg, sgx := 0.0, 0.0
		for j := 0; j < dim; j++ {
			i := r*dim + j
			xhat[j] = (x[i] - mean[r]) * rstd[r]
			g[j] = dy[i]
			if w != nil {
				g[j] *= w[j]
				dw[j] += dy[i] * xhat[j]
				db[j] += dy[i]
			}
			sg += g[j]
			sgx += g[j] * xhat[j]
		}
		sg /= float64(dim)
		sgx /= float64(dim)
		for j := 0; j < dim; j++ {
			d := rstd[r] * (g[j] - sg - xhat[j]*sgx)
			if accumulate {
				dx[r*dim+j] += d
			} else {
				dx[r*dim+j] = d
			}
		}
	}
}

// checkAffine panics unless w and b are both nil or both of length dim.
func checkAffine(op string, w, b []float64, dim int) {
	if (w == nil) != (b == nil) {
		panic(fmt.Sprintf("ref: %s: weight and bias: give both or neither", op))
	}
	if w != nil {
		wantLen(op, "weight", len(w), dim)
		wantLen(op, "bias", len(b), dim)
	}
}

// wantLen panics unless a slice has the length its shape implies.
func wantLen(op, name string, got, want int) {
	if got != want {
		panic(fmt.Sprintf("ref: %s: len(%s) = %d, want %d", op, name, got, want))
	}
}
