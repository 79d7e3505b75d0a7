package ref

import "fmt"

// Gemm computes C = alpha·op(A)·op(B) + beta·C + bias for one matrix product, naively in float64:
//
//	C[i,j] = alpha·Σ_l op(A)[i,l]·op(B)[l,j] + beta·C[i,j] + bias[j]
//
// op(A) is [m,k], stored as a [m,k] (row-major) or, with transA, as [k,m]; op(B) is [k,n], stored as
// [k,n] or, with transB, as [n,k]. c is [m,n] and is read only when beta != 0, so that a NaN-filled
// output with beta 0 is overwritten as on the device. bias is [n] or nil.
func Gemm(c, a, b []float64, m, n, k int, transA, transB bool, alpha, beta float64, bias []float64) {
	if len(a) != m*k || len(b) != k*n || len(c) != m*n || (bias != nil && len(bias) != n) {
		panic(fmt.Sprintf("ref: gemm m=%d n=%d k=%d: len(a)=%d len(b)=%d len(c)=%d len(bias)=%d",
			m, n, k, len(a), len(b), len(c), len(bias)))
	}
	for i := range m {
		for j := range n {
			sum := 0.0
			for l := range k {
				av := a[i*k+l]
				if transA {
					av = a[l*m+i]
				}
				bv := b[l*n+j]
				if transB {
					bv = b[j*k+l]
				}
				sum += av * bv
			}
			v := alpha * sum
			if beta != 0 {
				v += beta * c[i*n+j]
			}
			if bias != nil {
				v += bias[j]
			}
			c[i*n+j] = v
		}
	}
}
