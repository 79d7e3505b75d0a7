package vk

type biasGradientPush struct {
	Rows uint32
	N    uint32
}

// BiasGradient accumulates the bias gradient of a Linear y = x·Wᵀ + b: db[j] += Σ_rows dy[row, j], with dy
// f32 viewed as [rows, n] over its last dimension and db f32 [n]. The sum over rows has a fixed order
// (deterministic, no atomics).
func BiasGradient(s *Stream, db, dy Tensor) { biasGradient(s, db, dy, 0) }

// biasGradient is BiasGradient in dispatches of at most chunk rows (0: as many as fit).
func biasGradient(s *Stream, db, dy Tensor, chunk int) {
	const op = "bias gradient"
	rows, n := normShape(op, dy)
	if chunk == 0 {
		chunk = s.rowChunk(n)
	}
	checkNumel(op, "db", db, n)
	checkF32(op, db, dy)
	dy = dy.Reshape(rows, n)
	k, cols := s.columnKernel("bias_gradient")
	forChunks(rows, chunk, func(r0, m int) {
		s.dispatch("bias_gradient", k, biasGradientPush{uint32(m), uint32(n)}, [3]int{(n + cols - 1) / cols, 1, 1},
			out(db), in(dy.Slice(r0, m)))
	})
}
