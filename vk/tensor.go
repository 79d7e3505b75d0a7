package vk

import (
	"fmt"
	"math"
	"unsafe"

	vulkan "github.com/vulkan-go/vulkan"
	"github.com/x448/float16"
)

// DType is a tensor's element type on the device.
type DType uint8

const (
	F32  DType = iota
	F16        // IEEE half
	BF16       // bfloat16 stored as uint16
	U8         // 8-bit codes (8-bit optimizer states)
	U32
	I32
)

// Size is the element size in bytes.
func (t DType) Size() int {
	switch t {
	case F16, BF16:
		return 2
	case U8:
		return 1
	}
	return 4
}

func (t DType) String() string {
	return [...]string{"f32", "f16", "bf16", "u8", "u32", "i32"}[t]
}

// Tensor is a contiguous, row-major byte range of a device block with a dtype and shape. It is a value:
// views share storage with their parent; only the tensor returned by NewTensor may be freed.
type Tensor struct {
	blk   *block
	off   uint64 // bytes from block start
	DType DType
	Shape []int
	owner bool
}

// Numel is the number of elements.
func (t Tensor) Numel() int {
	n := 1
	for _, s := range t.Shape {
		n *= s
	}
	return n
}

// Bytes is the tensor's size in bytes.
func (t Tensor) Bytes() uint64 { return uint64(t.Numel() * t.DType.Size()) }

// Valid reports whether the tensor refers to device memory.
func (t Tensor) Valid() bool { return t.blk != nil }

func (t Tensor) String() string { return fmt.Sprintf("%s%v", t.DType, t.Shape) }

// Reshape returns a view with another shape of the same element count.
func (t Tensor) Reshape(shape ...int) Tensor {
	n := 1
	for _, s := range shape {
		n *= s
	}
	if n != t.Numel() {
		panic(fmt.Sprintf("vk: reshape %v to %v: element count %d != %d", t.Shape, shape, t.Numel(), n))
	}
	v := t
	v.Shape = append([]int(nil), shape...)
	v.owner = false
	return v
}

// Slice returns a view of elements [start, start+n) along the first dimension. The byte offset of the
// view must keep the device's storage alignment when it is bound on its own; ops that need unaligned
// starts take an element offset in their push constants instead.
func (t Tensor) Slice(start, n int) Tensor {
	if len(t.Shape) == 0 || start < 0 || n < 0 || start+n > t.Shape[0] {
		panic(fmt.Sprintf("vk: slice [%d:%d] of %v", start, start+n, t.Shape))
	}
	row := t.Numel() / max(t.Shape[0], 1)
	v := t
	v.off += uint64(start * row * t.DType.Size())
	v.Shape = append([]int{n}, t.Shape[1:]...)
	v.owner = false
	return v
}

// SameShape panics unless a and b have identical shapes; ops use it to catch caller bugs early.
func SameShape(op string, a, b Tensor) {
	if len(a.Shape) != len(b.Shape) {
		panic(fmt.Sprintf("vk: %s: shape %v vs %v", op, a.Shape, b.Shape))
	}
	for i := range a.Shape {
		if a.Shape[i] != b.Shape[i] {
			panic(fmt.Sprintf("vk: %s: shape %v vs %v", op, a.Shape, b.Shape))
		}
	}
}

// NewTensor allocates an uninitialized tensor.
func (d *Device) NewTensor(dt DType, shape ...int) (Tensor, error) {
	t := Tensor{DType: dt, Shape: append([]int(nil), shape...), owner: true}
	for _, s := range shape {
		if s < 0 {
			return Tensor{}, fmt.Errorf("vk: new tensor %s%v: negative dimension", dt, shape)
		}
	}
	b, off, err := d.mem.alloc(t.Bytes())
	if err != nil {
		return Tensor{}, fmt.Errorf("vk: new tensor %s%v (%d MiB): %w", dt, shape, t.Bytes()>>20, err)
	}
	t.blk, t.off = b, off
	return t, nil
}

// Free returns an allocated tensor's memory. Freeing a view panics; freeing the zero Tensor is a no-op.
func (d *Device) Free(t Tensor) {
	if t.blk == nil {
		return
	}
	if !t.owner {
		panic("vk: free of a tensor view " + t.String())
	}
	d.mem.release(t.blk, t.off, t.Bytes())
}

// WriteBytes copies raw bytes into the tensor (len(p) must equal t.Bytes()). No recorded work may be in
// flight on the tensor: Stream.Run waits for completion, so between runs is always safe.
func (d *Device) WriteBytes(t Tensor, p []byte) error {
	if uint64(len(p)) != t.Bytes() {
		panic(fmt.Sprintf("vk: write %d bytes into %v (%d bytes)", len(p), t, t.Bytes()))
	}
	if len(p) == 0 {
		return nil
	}
	if t.blk.mapped != nil {
		copy(unsafe.Slice((*byte)(unsafe.Add(t.blk.mapped, t.off)), len(p)), p)
		return nil
	}
	st, err := d.mem.stagingBlock(uint64(len(p)))
	if err != nil {
		return fmt.Errorf("vk: upload %v: %w", t, err)
	}
	copy(unsafe.Slice((*byte)(st.mapped), len(p)), p)
	return d.copyBuffer(st.buf, 0, t.blk.buf, t.off, uint64(len(p)), "upload "+t.String())
}

// ReadBytes copies the tensor's raw bytes to host memory.
func (d *Device) ReadBytes(t Tensor) ([]byte, error) {
	p := make([]byte, t.Bytes())
	if err := d.readInto(t, p); err != nil {
		return nil, err
	}
	return p, nil
}

// readInto copies the tensor's raw bytes into p (len(p) == t.Bytes()).
func (d *Device) readInto(t Tensor, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if t.blk.mapped != nil {
		copy(p, unsafe.Slice((*byte)(unsafe.Add(t.blk.mapped, t.off)), len(p)))
		return nil
	}
	st, err := d.mem.stagingBlock(uint64(len(p)))
	if err != nil {
		return fmt.Errorf("vk: download %v: %w", t, err)
	}
	if err := d.copyBuffer(t.blk.buf, t.off, st.buf, 0, uint64(len(p)), "download "+t.String()); err != nil {
		return err
	}
	copy(p, unsafe.Slice((*byte)(st.mapped), len(p)))
	return nil
}

// ReadF32 copies an f32 tensor into dst (len(dst) must equal t.Numel()) without converting or allocating:
// for host buffers reused every step, such as a data-parallel gradient all-reduce's.
func (d *Device) ReadF32(t Tensor, dst []float32) error {
	if t.DType != F32 || len(dst) != t.Numel() {
		panic(fmt.Sprintf("vk: read %v into %d floats, want an f32 tensor of that many elements", t, len(dst)))
	}
	if len(dst) == 0 {
		return nil
	}
	return d.readInto(t, unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst)))
}

// WriteF32 copies src into an f32 tensor (len(src) must equal t.Numel()) without converting: ReadF32's
// inverse.
func (d *Device) WriteF32(t Tensor, src []float32) error {
	if t.DType != F32 || len(src) != t.Numel() {
		panic(fmt.Sprintf("vk: write %d floats into %v, want an f32 tensor of that many elements", len(src), t))
	}
	if len(src) == 0 {
		return nil
	}
	return d.WriteBytes(t, unsafe.Slice((*byte)(unsafe.Pointer(&src[0])), 4*len(src)))
}

// Upload writes float32 values, converting to the tensor's dtype (f16/bf16: round to nearest even).
func (d *Device) Upload(t Tensor, v []float32) error {
	if len(v) != t.Numel() {
		panic(fmt.Sprintf("vk: upload %d values into %v", len(v), t))
	}
	return d.WriteBytes(t, EncodeF32(t.DType, v))
}

// Download reads the tensor as float32 (f32, f16, bf16 tensors; u8/u32/i32 are converted numerically).
func (d *Device) Download(t Tensor) ([]float32, error) {
	p, err := d.ReadBytes(t)
	if err != nil {
		return nil, err
	}
	return DecodeF32(t.DType, p), nil
}

// EncodeF32 converts float32 values to the raw bytes of dtype dt.
func EncodeF32(dt DType, v []float32) []byte {
	p := make([]byte, len(v)*dt.Size())
	for i, x := range v {
		switch dt {
		case F32:
			*(*uint32)(unsafe.Pointer(&p[4*i])) = math.Float32bits(x)
		case F16:
			*(*uint16)(unsafe.Pointer(&p[2*i])) = F32ToF16(x)
		case BF16:
			*(*uint16)(unsafe.Pointer(&p[2*i])) = F32ToBF16(x)
		case U8:
			p[i] = uint8(x)
		case U32:
			*(*uint32)(unsafe.Pointer(&p[4*i])) = uint32(x)
		case I32:
			*(*int32)(unsafe.Pointer(&p[4*i])) = int32(x)
		}
	}
	return p
}

// DecodeF32 converts raw bytes of dtype dt to float32 values.
func DecodeF32(dt DType, p []byte) []float32 {
	n := len(p) / dt.Size()
	v := make([]float32, n)
	for i := range v {
		switch dt {
		case F32:
			v[i] = math.Float32frombits(*(*uint32)(unsafe.Pointer(&p[4*i])))
		case F16:
			v[i] = F16ToF32(*(*uint16)(unsafe.Pointer(&p[2*i])))
		case BF16:
			v[i] = math.Float32frombits(uint32(*(*uint16)(unsafe.Pointer(&p[2*i]))) << 16)
		case U8:
			v[i] = float32(p[i])
		case U32:
			v[i] = float32(*(*uint32)(unsafe.Pointer(&p[4*i])))
		case I32:
			v[i] = float32(*(*int32)(unsafe.Pointer(&p[4*i])))
		}
	}
	return v
}

// F32ToBF16 rounds to nearest even; NaN stays a quiet NaN.
func F32ToBF16(x float32) uint16 {
	b := math.Float32bits(x)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// F32ToF16 rounds to nearest even and clamps finite values to ±65504 (the largest half), as the
// conversion shaders do, so that an activation just above the range saturates instead of becoming inf;
// inf stays inf and NaN stays NaN (quieted). The rounding is x448/float16's, checked by its author on
// all 2^32 inputs; only the clamp is ours.
func F32ToF16(x float32) uint16 {
	h := float16.Fromfloat32(x)
	if h.IsInf(0) && !math.IsInf(float64(x), 0) {
		return h.Bits()&0x8000 | 0x7bff
	}
	return h.Bits()
}

// F16ToF32 is exact.
func F16ToF32(h uint16) float32 { return float16.Frombits(h).Float32() }

// copyBuffer runs a one-off transfer and waits for it.
func (d *Device) copyBuffer(src vulkan.Buffer, srcOff uint64, dst vulkan.Buffer, dstOff, size uint64, what string) error {
	return d.oneShot(what, func(cb vulkan.CommandBuffer) {
		d.calls.cmdCopyBuffer(cb, src, srcOff, dst, dstOff, size)
	})
}

// oneShot records fn into a fresh command buffer, submits it and waits.
func (d *Device) oneShot(what string, fn func(cb vulkan.CommandBuffer)) error {
	cb, r := d.calls.allocateCommandBuffer(d.cmdPool)
	if err := check(r, "vkAllocateCommandBuffers", what); err != nil {
		return err
	}
	defer vulkan.FreeCommandBuffers(d.dev, d.cmdPool, 1, []vulkan.CommandBuffer{cb})
	if err := check(d.calls.beginCommandBuffer(cb, vulkan.CommandBufferUsageOneTimeSubmitBit), "vkBeginCommandBuffer", what); err != nil {
		return err
	}
	fn(cb)
	if err := check(vulkan.EndCommandBuffer(cb), "vkEndCommandBuffer", what); err != nil {
		return err
	}
	return d.submitWait(cb, what)
}

func (d *Device) submitWait(cb vulkan.CommandBuffer, what string) error {
	fence, r := d.calls.createFence()
	if err := check(r, "vkCreateFence", what); err != nil {
		return err
	}
	defer vulkan.DestroyFence(d.dev, fence, nil)
	if err := check(d.calls.queueSubmit(d.queue, cb, fence), "vkQueueSubmit", what); err != nil {
		return err
	}
	return check(vulkan.WaitForFences(d.dev, 1, []vulkan.Fence{fence}, vulkan.True, math.MaxUint64), "vkWaitForFences", what)
}
