// Package vk is the Vulkan runtime and op library of vjepa-vk.
//
// The runtime (device.go, memory.go, tensor.go, pipeline.go, stream.go) opens a compute device, suballocates
// tensors from a few large blocks, builds pipelines from the embedded SPIR-V of package shaders, and records
// a sequence of dispatches into a Stream that can be replayed. Each op lives in its own file vk/<op>.go with
// its push-constant struct, grid and variant choice; its float64 CPU reference is vk/ref/<op>.go.
//
// Op signatures follow llm.c: the stream first, then outputs, then inputs, then parameters. Ops allocate
// nothing and return nothing: a recording error (a pipeline that fails to build, a binding over the device's
// range) is kept in the stream and returned by Stream.Run, like bufio.Writer's sticky error. A shape
// mismatch between tensors is a bug in the caller and panics with both shapes.
package vk
