package vk

import "fmt"

// LayerNorm over the last dimension (spec §2.4 norm1/norm2/predictor_norm, eps 1e-6; spec §2.3 step 7 and
// §6.1 the parameter-free LN₀, eps 1e-5). Forward keeps mean and rstd per row for the backward pass.

type layerNormPush struct {
	Rows uint32
	Dim  uint32
	Eps  float32
}

type layerNormBackwardPush struct {
	Rows uint32
	Dim  uint32
}

type layerNormBackwardWeightPush struct {
	Rows uint32
	Dim  uint32
}

// rowGranule keeps every chunk of a row-split dispatch aligned: row offsets that are multiples of 64 put
// a [rows] f32 view at a multiple of 256 bytes, and a [rows, dim] view too.
const rowGranule = 64

// rowChunk is the most rows of rowElems f32 elements one dispatch binds so that each binding stays within
// the device's maxStorageBufferRange.
func (s *Stream) rowChunk(rowElems int) int {
	r := int(s.d.MaxBinding() / uint64(4*max(rowElems, 1)))
	if r < rowGranule {
		return max(r, 1) // a row of over 2^19 elements at 128 MiB: chunks may misalign, which dispatch reports
	}
	return r / rowGranule * rowGranule
}

// layerNormLocal is the workgroup size (one workgroup per row) for rows of dim elements: about four
// elements per invocation, between 32 and 256, on a GPU; on a CPU device (lavapipe), which runs a
// workgroup on one thread and pays for every barrier phase of a larger one, one subgroup (8 or 16 lanes there:
// the demo's 23 layer norms 4.6–4.7 → 3.1 ms per step against 32 invocations, 3.6–4.8 with 16).
func (s *Stream) layerNormLocal(dim int) int {
	if sg := s.d.Info.SubgroupSize; s.d.Info.Type == "cpu" && sg >= 4 && sg <= 32 && sg&(sg-1) == 0 {
		return sg
	}
	l := 32
	for s.d.Info.Type != "cpu" && l < 256 && 4*l < dim {
		l *= 2
	}
	return l
}

// layerNormCPU reports whether the layer norms take their CPU variant (-DCPU: one subgroup per row, rows
// read as 16-byte texels and written as vec4s): on the CPU kernels, with rows of a multiple of 4 elements
// and every [rows, dim] or [dim] tensor of ts starting on a 16-byte boundary (so does each row then, and
// each chunk of rows). On lavapipe the texel reads take a third of the time of a storage-buffer load per
// element (texel.go).
func layerNormCPU(kernels string, dim int, ts ...Tensor) bool {
	if kernels != KernelsCPU || dim%4 != 0 {
		return false
	}
	for _, t := range ts {
		if t.Valid() && t.off%texelBytes != 0 {
			return false
		}
	}
	return true
}

// columnKernel is the shape of the column-sum kernels (layernorm_backward_weight, bias_gradient): cols
// columns per workgroup, each summed over the rows by lanes invocations (a power of two) and then a fixed
// tree. A GPU gets 16×64 = 1024 invocations, enough in flight to stream [rows, dim] from memory with only
// dim/16 workgroups; a CPU device (lavapipe) 16×16.
func (s *Stream) columnKernel(shader string) (k kernel, cols int) {
	cols, lanes := 16, 64
	if s.d.Info.Type == "cpu" || s.d.Info.MaxWorkgroupInvoc < cols*lanes {
		lanes = 16
	}
	return kernel{shader, []uint32{uint32(cols), uint32(lanes)}}, cols
}

// overlaps reports whether a and b share any bytes of device memory.
func overlaps(a, b Tensor) bool {
	return a.blk != nil && a.blk == b.blk && a.off < b.off+b.Bytes() && b.off < a.off+a.Bytes()
}

// normShape returns (rows, dim) of x viewed as [rows, dim] over its last dimension.
func normShape(op string, x Tensor) (int, int) {
	if len(x.Shape) == 0 || x.Shape[len(x.Shape)-1] == 0 {
		panic(fmt.Sprintf("vk: %s: input %v has no last dimension to normalize", op, x))
	}
	dim := x.Shape[len(x.Shape)-1]
	return x.Numel() / dim, dim
}

func checkNumel(op, name string, t Tensor, n int) {
	if t.Numel() != n {
		panic(fmt.Sprintf("vk: %s: %s %v, want %d elements", op, name, t, n))
	}
}

// LayerNorm computes, per row of x viewed as [rows, dim] over its last dimension,
//
//	y = (x − mean)·rstd·w + b,   mean = Σx/dim,   rstd = 1/sqrt(Σ(x − mean)²/dim + eps)
//
// (biased variance, two passes over the row). w and b are f32 [dim], or both the zero Tensor for the
// parameter-free LayerNorm (w = 1, b = 0). mean and rstd, f32 [rows], are written for LayerNormBackward.
// y has x's shape and must not overlap x: the backward pass needs x.
func LayerNorm(s *Stream, y, mean, rstd, x, w, b Tensor, eps float32) {
	layerNorm(s, y, mean, rstd, x, w, b, eps, 0, s.d.kernels)
}

// layerNorm is LayerNorm on the given kernel variant in dispatches of at most chunk rows (0: as many as
// the binding range allows).
func layerNorm(s *Stream, y, mean, rstd, x, w, b Tensor, eps float32, chunk int, kernels string) {
	const op = "layernorm"
	rows, dim := normShape(op, x)
	if chunk == 0 {
		chunk = s.rowChunk(dim)
	}
	SameShape(op+" y vs x", y, x)
	checkNumel(op, "mean", mean, rows)
	checkNumel(op, "rstd", rstd, rows)
	affine := w.Valid()
	if b.Valid() != affine {
		panic(fmt.Sprintf("vk: %s: w %v and b %v: give both or neither", op, w, b))
	}
	if affine {
		checkNumel(op, "w", w, dim)
		checkNumel(op, "b", b, dim)
		checkF32(op, w, b)
	}
	checkF32(op, y, mean, rstd, x)
	if overlaps(y, x) {
		panic(fmt.Sprintf("vk: %s: y %v overlaps x %v", op, y, x))
	}
	y, x, mean, rstd = y.Reshape(rows, dim), x.Reshape(rows, dim), mean.Reshape(rows), rstd.Reshape(rows)
	k := kernel{"layernorm", []uint32{uint32(s.layerNormLocal(dim))}}
	if !affine {
		k.shader = "layernorm.noaffine"
	}
	cpu := layerNormCPU(kernels, dim, y, x, w, b)
	if cpu {
		k.shader += ".cpu"
	}
	forChunks(rows, chunk, func(r0, n int) {
		bs := []binding{out(y.Slice(r0, n)), out(mean.Slice(r0, n)), out(rstd.Slice(r0, n)), in(x.Slice(r0, n))}
		if affine {
			bs = append(bs, in(w), in(b))
		}
		if cpu {
			bs[3] = texels(bs[3].t)
			if affine {
				bs[4], bs[5] = texels(w), texels(b)
			}
		}
		s.dispatch(op, k, layerNormPush{uint32(n), uint32(dim), eps}, s.grid1D(n, 1), bs...)
	})
}

// LayerNormBackward computes, from dy and the forward input x with its saved mean and rstd, per row
// (x̂ = (x − mean)·rstd, g = dy·w, or g = dy without w):
//
//	dx  = rstd·(g − mean(g) − x̂·mean(g·x̂))   overwritten, or added to dx when accumulate
//	dw += Σ_rows dy·x̂,  db += Σ_rows dy      always accumulated (deterministic, no atomics)
//
// Without parameters w, dw and db are all the zero Tensor and only dx is computed. With w but dw and db
// the zero Tensor (frozen parameters) the parameter gradients are skipped. dx must not overlap dy or x.
func LayerNormBackward(s *Stream, dx, dw, db, dy, x, w, mean, rstd Tensor, accumulate bool) {
	layerNormBackward(s, dx, dw, db, dy, x, w, mean, rstd, accumulate, 0, s.d.kernels)
}

// layerNormBackward is LayerNormBackward on the given kernel variant in dispatches of at most chunk rows
// (0: as many as fit).
func layerNormBackward(s *Stream, dx, dw, db, dy, x, w, mean, rstd Tensor, accumulate bool, chunk int, kernels string) {
	const op = "layernorm backward"
	rows, dim := normShape(op, x)
	if chunk == 0 {
		chunk = s.rowChunk(dim)
	}
	SameShape(op+" dx vs x", dx, x)
	SameShape(op+" dy vs x", dy, x)
	checkNumel(op, "mean", mean, rows)
	checkNumel(op, "rstd", rstd, rows)
	affine, paramGrads := w.Valid(), dw.Valid()
	if dw.Valid() != db.Valid() || (paramGrads && !affine) {
		panic(fmt.Sprintf("vk: %s: w %v, dw %v, db %v: give dw and db together, and only with w", op, w, dw, db))
	}
	if affine {
		checkNumel(op, "w", w, dim)
		checkF32(op, w)
	}
	if paramGrads {
		checkNumel(op, "dw", dw, dim)
		checkNumel(op, "db", db, dim)
		checkF32(op, dw, db)
	}
	checkF32(op, dx, dy, x, mean, rstd)
	if overlaps(dx, dy) || overlaps(dx, x) {
		panic(fmt.Sprintf("vk: %s: dx %v overlaps dy or x", op, dx))
	}
	dx, dy, x, mean, rstd = dx.Reshape(rows, dim), dy.Reshape(rows, dim), x.Reshape(rows, dim), mean.Reshape(rows), rstd.Reshape(rows)
	name := "layernorm_backward"
	switch {
	case !affine && accumulate:
		name += ".noaffine_accumulate"
	case !affine:
		name += ".noaffine"
	case accumulate:
		name += ".accumulate"
	}
	cpu := layerNormCPU(kernels, dim, dx, dy, x, w)
	if cpu {
		name += ".cpu"
	}
	k := kernel{name, []uint32{uint32(s.layerNormLocal(dim))}}
	kw, cols := s.columnKernel("layernorm_backward_weight")
	forChunks(rows, chunk, func(r0, n int) {
		dyc, xc, mc, rc := dy.Slice(r0, n), x.Slice(r0, n), mean.Slice(r0, n), rstd.Slice(r0, n)
		if paramGrads {
			s.dispatch(op+" weight", kw, layerNormBackwardWeightPush{uint32(n), uint32(dim)},
				[3]int{(dim + cols - 1) / cols, 1, 1}, out(dw), out(db), in(dyc), in(xc), in(mc), in(rc))
		}
		bs := []binding{out(dx.Slice(r0, n)), in(dyc), in(xc), in(mc), in(rc)}
		if affine {
			bs = append(bs, in(w))
		}
		if cpu {
			bs[1], bs[2] = texels(dyc), texels(xc)
			if affine {
				bs[5] = texels(w)
			}
		}
		s.dispatch(op, k, layerNormBackwardPush{uint32(n), uint32(dim)}, s.grid1D(n, 1), bs...)
	})
}
