package vk

import "testing"

// The push structs of the elementwise, normalization, loss, reduction, conversion and copy ops against the
// push blocks of every shader variant they drive (checkPushLayout reads the SPIR-V).

func TestElementwisePushLayout(t *testing.T) {
	checkPushLayout(t, "add", addPush{})
	checkPushLayout(t, "axpy", axpyPush{})
	checkPushLayout(t, "scale", scalePush{})
}

func TestGeluPushLayout(t *testing.T) {
	checkPushLayout(t, "gelu", geluPush{})
	checkPushLayout(t, "gelu_backward", geluPush{})
}

func TestLayerNormPushLayout(t *testing.T) {
	for _, sh := range []string{"layernorm", "layernorm.noaffine"} {
		checkPushLayout(t, sh, layerNormPush{})
	}
	for _, sh := range []string{"layernorm_backward", "layernorm_backward.accumulate", "layernorm_backward.noaffine",
		"layernorm_backward.noaffine_accumulate"} {
		checkPushLayout(t, sh, layerNormBackwardPush{})
	}
	checkPushLayout(t, "layernorm_backward_weight", layerNormBackwardWeightPush{})
}

func TestBiasGradientPushLayout(t *testing.T) {
	checkPushLayout(t, "bias_gradient", biasGradientPush{})
}

func TestReducePushLayout(t *testing.T) {
	for _, v := range []string{"sum", "sum_squares", "max_abs"} {
		checkPushLayout(t, "reduce."+v, reducePush{})
		checkPushLayout(t, "reduce_finish."+v, reduceFinishPush{})
	}
}

func TestL1LossPushLayout(t *testing.T) {
	checkPushLayout(t, "l1_loss", l1LossPush{})
	checkPushLayout(t, "l1_loss_backward", l1LossBackwardPush{})
	checkPushLayout(t, "l1_loss_backward.accumulate", l1LossBackwardPush{})
}

func TestConvertPushLayout(t *testing.T) {
	for _, src := range []DType{F32, F16, BF16} {
		for _, dst := range []DType{F32, F16, BF16} {
			checkPushLayout(t, "convert."+src.String()+"_"+dst.String(), convertPush{})
		}
	}
}

func TestCopyBlocksPushLayout(t *testing.T) {
	checkPushLayout(t, "copy_blocks", copyBlocksPush{})
	checkPushLayout(t, "copy_blocks.accumulate", copyBlocksPush{})
}
