// Package model holds the V-JEPA 2-AC predictor and the frozen ViT-g encoder on top of package vk, and the
// host-side weights I/O they load from (spec §9).
//
// Weights I/O is plain Go with no Vulkan: torchzip.go and pickle.go read the torch.save zip archives the
// official code writes (a restricted unpickler that never runs code), safetensors.go reads (memory-mapped)
// and writes safetensors, names.go knows every expected state_dict name and shape (spec §2.2, §8.2) and
// the key clean-up of spec §9.3, and peft.go reads and writes LoRA adapters in Hugging Face PEFT layout.
// Tensors are read one at a time on demand, so a 12 GB checkpoint never has to fit in memory.
package model
