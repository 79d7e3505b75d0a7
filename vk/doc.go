// Package vk is the Vulkan runtime and op library of vjepa-vk.
//
// The runtime (device.go, memory.go, tensor.go, pipeline.go, stream.go) opens a compute device, suballocates
// tensors from a few large blocks, builds pipelines from the embedded SPIR-V of package shaders, and records
// a sequence of dispatches into a Stream that can be replayed. Each op lives in its own file vk/<op>.go with
// its push-constant struct, grid and variant choice; its float64 CPU reference is vk/ref/<op>.go.
//
// Every Vulkan call that takes a struct goes through the C shim (shim.c, wrapped in shim.go), never through
// vulkan-go's wrappers, whose C copies of structs a garbage collection could free during the call;
// vulkan-go stays for handles, types and the calls that take only handles and scalars.
//
// Op signatures follow llm.c: the stream first, then outputs, then inputs, then parameters. Ops allocate
// nothing and return nothing: a recording error (a pipeline that fails to build, a binding over the device's
// range) is kept in the stream and returned by Stream.Run, like bufio.Writer's sticky error. A shape
// mismatch between tensors is a bug in the caller and panics with both shapes.
package vk
