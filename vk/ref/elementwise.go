package ref

// Add is y = a + b elementwise.
func Add(y, a, b []float64) {
	wantLen("Add", "a", len(a), len(y))
	wantLen("Add", "b", len(b), len(y))
	for i := range y {
		y[i] = a[i] + b[i]
	}
}

// Axpy is y += alpha·x elementwise.
func Axpy(y, x []float64, alpha float64) {
	wantLen("Axpy", "x", len(x), len(y))
	for i := range y {
		y[i] += alpha * x[i]
	}
}

// Scale is y = alpha·x elementwise.
func Scale(y, x []float64, alpha float64) {
	wantLen("Scale", "x", len(x), len(y))
	for i := range y {
		y[i] = alpha * x[i]
	}
}

// BiasGradient is the bias gradient of a Linear y = x·Wᵀ + b, accumulated: db_j += Σ_rows dy[row, j] with
// dy [rows, n], db [n].
func BiasGradient(db, dy []float64, rows, n int) {
	wantLen("BiasGradient", "db", len(db), n)
	wantLen("BiasGradient", "dy", len(dy), rows*n)
	for r := 0; r < rows; r++ {
		for j := 0; j < n; j++ {
			db[j] += dy[r*n+j]
		}
	}
}
