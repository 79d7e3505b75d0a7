package vk

import (
	"fmt"
	"sort"
	"unsafe"

	vulkan "github.com/vulkan-go/vulkan"
)

// block is one VkBuffer bound to its own VkDeviceMemory; tensors are byte ranges of a block. Few large
// blocks keep us far below maxMemoryAllocationCount and let one descriptor cover many tensors.
type block struct {
	buf    vulkan.Buffer
	mem    vulkan.DeviceMemory
	size   uint64
	mapped unsafe.Pointer // non-nil when the memory is host-visible and coherent (CPU drivers, ReBAR)
	free   []span         // sorted by offset, coalesced
	id     int
}

type span struct{ off, size uint64 }

// allocator suballocates device-local blocks with the device's storage-buffer offset alignment.
type allocator struct {
	d         *Device
	memTypes  []vulkan.MemoryPropertyFlagBits // property flags of each memory type
	blockSize uint64
	align     uint64
	blocks    []*block
	staging   *block // host-visible block for uploads/downloads when device memory is not mappable
	used      uint64
	peak      uint64
}

func newAllocator(d *Device, memTypes []vulkan.MemoryPropertyFlagBits, blockSize uint64) *allocator {
	align := d.Info.StorageAlignment
	if align < 16 {
		align = 16
	}
	return &allocator{d: d, memTypes: memTypes, blockSize: blockSize, align: align}
}

func alignUp(x, a uint64) uint64 { return (x + a - 1) / a * a }

func (a *allocator) findMemoryType(bits uint32, want vulkan.MemoryPropertyFlagBits) (uint32, bool) {
	for i, flags := range a.memTypes {
		if bits&(1<<i) != 0 && flags&want == want {
			return uint32(i), true
		}
	}
	return 0, false
}

// newBlock creates a buffer of size bytes; hostVisible asks for staging memory, otherwise device-local
// memory is used, mapped when it is also host-visible and coherent.
func (a *allocator) newBlock(size uint64, hostVisible bool) (*block, error) {
	dev := a.d.dev
	usage := vulkan.BufferUsageStorageBufferBit | vulkan.BufferUsageStorageTexelBufferBit | vulkan.BufferUsageTransferSrcBit |
		vulkan.BufferUsageTransferDstBit
	buf, r := a.d.calls.createBuffer(size, usage)
	if err := check(r, "vkCreateBuffer", "%d bytes", size); err != nil {
		return nil, err
	}
	reqSize, typeBits := a.d.calls.bufferRequirements(buf)
	hostBits := vulkan.MemoryPropertyHostVisibleBit | vulkan.MemoryPropertyHostCoherentBit
	var (
		idx    uint32
		ok     bool
		mapped bool
	)
	if hostVisible {
		if idx, ok = a.findMemoryType(typeBits, hostBits|vulkan.MemoryPropertyHostCachedBit); !ok {
			idx, ok = a.findMemoryType(typeBits, hostBits)
		}
		mapped = ok
	} else if idx, ok = a.findMemoryType(typeBits, vulkan.MemoryPropertyDeviceLocalBit|hostBits); ok && a.d.Info.Type == "cpu" {
		mapped = true
	} else {
		idx, ok = a.findMemoryType(typeBits, vulkan.MemoryPropertyDeviceLocalBit)
		if !ok {
			idx, ok = a.findMemoryType(typeBits, 0)
		}
	}
	if !ok {
		vulkan.DestroyBuffer(dev, buf, nil)
		return nil, fmt.Errorf("vk: no memory type for a %d-byte buffer (type bits %#x)", size, typeBits)
	}
	mem, r := a.d.calls.allocateMemory(reqSize, idx)
	if err := check(r, "vkAllocateMemory", "block of %d MiB (%d MiB in use)", size>>20, a.used>>20); err != nil {
		vulkan.DestroyBuffer(dev, buf, nil)
		return nil, err
	}
	if err := check(vulkan.BindBufferMemory(dev, buf, mem, 0), "vkBindBufferMemory", ""); err != nil {
		vulkan.FreeMemory(dev, mem, nil)
		vulkan.DestroyBuffer(dev, buf, nil)
		return nil, err
	}
	b := &block{buf: buf, mem: mem, size: size, free: []span{{0, size}}, id: len(a.blocks)}
	if mapped {
		var p unsafe.Pointer
		if err := check(vulkan.MapMemory(dev, mem, 0, vulkan.DeviceSize(vulkan.WholeSize), 0, &p), "vkMapMemory", ""); err != nil {
			vulkan.FreeMemory(dev, mem, nil)
			vulkan.DestroyBuffer(dev, buf, nil)
			return nil, err
		}
		b.mapped = p
	}
	return b, nil
}

// alloc returns a span of at least size bytes, aligned to the storage offset alignment.
func (a *allocator) alloc(size uint64) (*block, uint64, error) {
	size = alignUp(max(size, 1), a.align)
	for _, b := range a.blocks {
		if off, ok := b.take(size); ok {
			a.note(size)
			return b, off, nil
		}
	}
	bs := max(a.blockSize, size)
	b, err := a.newBlock(bs, false)
	if err != nil {
		return nil, 0, err
	}
	b.id = len(a.blocks)
	a.blocks = append(a.blocks, b)
	off, _ := b.take(size)
	a.note(size)
	return b, off, nil
}

func (a *allocator) note(size uint64) {
	a.used += size
	a.peak = max(a.peak, a.used)
}

func (b *block) take(size uint64) (uint64, bool) {
	for i, s := range b.free {
		if s.size >= size {
			off := s.off
			if s.size == size {
				b.free = append(b.free[:i], b.free[i+1:]...)
			} else {
				b.free[i] = span{s.off + size, s.size - size}
			}
			return off, true
		}
	}
	return 0, false
}

func (a *allocator) release(b *block, off, size uint64) {
	size = alignUp(max(size, 1), a.align)
	a.used -= size
	b.free = append(b.free, span{off, size})
	sort.Slice(b.free, func(i, j int) bool { return b.free[i].off < b.free[j].off })
	out := b.free[:1]
	for _, s := range b.free[1:] {
		last := &out[len(out)-1]
		if last.off+last.size == s.off {
			last.size += s.size
		} else {
			out = append(out, s)
		}
	}
	b.free = out
}

// stagingBlock returns a host-visible block of at least size bytes, growing it as needed.
func (a *allocator) stagingBlock(size uint64) (*block, error) {
	if a.staging != nil && a.staging.size >= size {
		return a.staging, nil
	}
	if a.staging != nil {
		a.destroyBlock(a.staging)
		a.staging = nil
	}
	b, err := a.newBlock(max(size, 16<<20), true)
	if err != nil {
		return nil, err
	}
	a.staging = b
	return b, nil
}

func (a *allocator) destroyBlock(b *block) {
	if b.mapped != nil {
		vulkan.UnmapMemory(a.d.dev, b.mem)
	}
	vulkan.DestroyBuffer(a.d.dev, b.buf, nil)
	vulkan.FreeMemory(a.d.dev, b.mem, nil)
}

func (a *allocator) destroy() {
	for _, b := range a.blocks {
		a.destroyBlock(b)
	}
	if a.staging != nil {
		a.destroyBlock(a.staging)
	}
	a.blocks, a.staging = nil, nil
}

// MemoryStats reports bytes currently allocated to tensors, the peak, and the bytes reserved in blocks.
type MemoryStats struct{ Used, Peak, Reserved uint64 }

// Memory returns the allocator's statistics.
func (d *Device) Memory() MemoryStats {
	var r uint64
	for _, b := range d.mem.blocks {
		r += b.size
	}
	return MemoryStats{Used: d.mem.used, Peak: d.mem.peak, Reserved: r}
}
