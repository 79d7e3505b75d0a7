package ref

import (
	"fmt"
	"runtime"
	"sync"
)

// Gemm computes C = alpha·op(A)·op(B) + beta·C + bias for one matrix product, naively in float64:
//
//	C[i,j] = alpha·Σ_l op(A)[i,l]·op(B)[l,j] + beta·C[i,j] + bias[j]
//
// op(A) is [m,k], stored as a [m,k] (row-major) or, with transA, as [k,m]; op(B) is [k,n], stored as
// [k,n] or, with transB, as [n,k]. c is [m,n] and is read only when beta != 0, so that a NaN-filled
// output with beta 0 is overwritten as on the device. bias is [n] or nil.
//
// Each sum runs over l in order, as the plain triple loop's. The operands are first copied to rows of
// op(A) and columns of op(B), so that every sum reads two contiguous runs, and large products split their
// rows over GOMAXPROCS goroutines: the tests' float64 references of the model's products took most of
// `go test ./vk`'s time otherwise.
func Gemm(c, a, b []float64, m, n, k int, transA, transB bool, alpha, beta float64, bias []float64) {
	if len(a) != m*k || len(b) != k*n || len(c) != m*n || (bias != nil && len(bias) != n) {
		panic(fmt.Sprintf("ref: gemm m=%d n=%d k=%d: len(a)=%d len(b)=%d len(c)=%d len(bias)=%d",
			m, n, k, len(a), len(b), len(c), len(bias)))
	}
	rows, cols := a, b // op(A) [m, k] and op(B)ᵀ [n, k], row-major
	if transA {
		rows = transpose(a, k, m)
	}
	if !transB {
		cols = transpose(b, k, n)
	}
	product := func(i0, i1 int) {
		for i := i0; i < i1; i++ {
			ra := rows[i*k : (i+1)*k]
			for j := range n {
				cb := cols[j*k : (j+1)*k]
				sum := 0.0
				for l, av := range ra {
					sum += av * cb[l]
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
	workers := min(runtime.GOMAXPROCS(0), m)
	if workers < 2 || m*n*k < 1<<22 {
		product(0, m)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			product(w*m/workers, (w+1)*m/workers)
		}()
	}
	wg.Wait()
}

// transpose returns the [cols, rows] transpose of x stored [rows, cols].
func transpose(x []float64, rows, cols int) []float64 {
	t := make([]float64, len(x))
	for r := range rows {
		for c := range cols {
			t[c*rows+r] = x[r*cols+c]
		}
	}
	return t
}
