package model

import "github.com/vjepa-vk/vjepa-vk/vk"

// SetUnfusedEpilogues makes p's blocks run the ops that follow their linears (residual adds, GELU and
// its gradient) as kernels of their own instead of GEMM epilogues: the sequence the fused one must equal.
func SetUnfusedEpilogues(p *Predictor, on bool) {
	for _, b := range p.blocks {
		for _, l := range []*linear{b.qkv, b.proj, b.fc1, b.fc2} {
			l.unfused = on
		}
	}
}

// DropGradSplitK makes p's adapters compute their weight gradients without split-K.
func DropGradSplitK(p *Predictor) {
	for _, a := range p.LoRAs {
		a.splitK = vk.Tensor{}
	}
}
