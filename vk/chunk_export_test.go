package vk

// The ops that split themselves over the device's binding range, with the split size as a parameter,
// exported to the external tests so that the split paths run on small tensors.
var (
	AddChunked               = add
	AxpyChunked              = axpy
	ScaleChunked             = scale
	GeluChunked              = gelu
	GeluBackwardChunked      = geluBackward
	LayerNormChunked         = layerNorm
	LayerNormBackwardChunked = layerNormBackward
	BiasGradientChunked      = biasGradient
	L1LossChunked            = l1Loss
	L1LossBackwardChunked    = l1LossBackward
	ConvertChunked           = convert
	CopyBlocksChunked        = copyBlocks
	CopyBlocksAsRegions      = copyBlocksAsRegions
	SumChunked               = func(s *Stream, out, x, ws Tensor, chunk int) { reduce(s, "sum", out, x, ws, 1, chunk) }
	SumSquaresChunked        = func(s *Stream, acc, x, ws Tensor, chunk int) { reduce(s, "sum_squares", acc, x, ws, 1, chunk) }
	MaxAbsChunked            = func(s *Stream, out, x, ws Tensor, chunk int) { reduce(s, "max_abs", out, x, ws, 1, chunk) }
	ReducePartial            = reducePartial
	ElementGranule           = elementGranule
)

// The planner's ops with their split size as a parameter.
var (
	L1EnergyChunked         = l1Energy
	L1EnergyBackwardChunked = l1EnergyBackward
	AttentionCachedChunked  = attentionCached
)
