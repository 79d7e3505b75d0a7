package vk

import (
	"fmt"
	"strings"
	"sync"
	"unsafe"

	vulkan "github.com/vulkan-go/vulkan"

	"github.com/vjepa-vk/vjepa-vk/shaders"
)

// pushBytes is the push-constant range every pipeline layout declares: the minimum every device
// guarantees, so each shader also runs on lavapipe.
const pushBytes = 128

// kernel names a compiled module and its specialization constants (constant_id i = spec[i]).
type kernel struct {
	shader string
	spec   []uint32
}

func (k kernel) key(nbind int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%d", k.shader, nbind)
	for _, v := range k.spec {
		fmt.Fprintf(&b, ",%d", v)
	}
	return b.String()
}

type pipeline struct {
	pipe   vulkan.Pipeline
	layout vulkan.PipelineLayout
	dsl    vulkan.DescriptorSetLayout
	nbind  int
}

type pipelineCache struct {
	d       *Device
	mu      sync.Mutex
	pipes   map[string]*pipeline
	layouts map[int]vulkan.DescriptorSetLayout
}

func newPipelineCache(d *Device) *pipelineCache {
	return &pipelineCache{d: d, pipes: map[string]*pipeline{}, layouts: map[int]vulkan.DescriptorSetLayout{}}
}

func (c *pipelineCache) setLayout(n int) (vulkan.DescriptorSetLayout, error) {
	if l, ok := c.layouts[n]; ok {
		return l, nil
	}
	bs := make([]vulkan.DescriptorSetLayoutBinding, n)
	for i := range bs {
		bs[i] = vulkan.DescriptorSetLayoutBinding{
			Binding:         uint32(i),
			DescriptorType:  vulkan.DescriptorTypeStorageBuffer,
			DescriptorCount: 1,
			StageFlags:      vulkan.ShaderStageFlags(vulkan.ShaderStageComputeBit),
		}
	}
	var l vulkan.DescriptorSetLayout
	if err := check(vulkan.CreateDescriptorSetLayout(c.d.dev, &vulkan.DescriptorSetLayoutCreateInfo{
		SType:        vulkan.StructureTypeDescriptorSetLayoutCreateInfo,
		BindingCount: uint32(n),
		PBindings:    bs,
	}, nil, &l), "vkCreateDescriptorSetLayout", "%d bindings", n); err != nil {
		return nil, err
	}
	c.layouts[n] = l
	return l, nil
}

// get returns the pipeline for k with nbind storage-buffer bindings, building it on first use.
func (c *pipelineCache) get(k kernel, nbind int) (*pipeline, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := k.key(nbind)
	if p, ok := c.pipes[key]; ok {
		return p, nil
	}
	code, err := shaders.SPIRV(k.shader)
	if err != nil {
		return nil, err
	}
	dev := c.d.dev
	words := make([]uint32, len(code)/4)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(code)), code)
	var mod vulkan.ShaderModule
	if err := check(vulkan.CreateShaderModule(dev, &vulkan.ShaderModuleCreateInfo{
		SType:    vulkan.StructureTypeShaderModuleCreateInfo,
		CodeSize: uint(len(code)),
		PCode:    words,
	}, nil, &mod), "vkCreateShaderModule", k.shader); err != nil {
		return nil, err
	}
	defer vulkan.DestroyShaderModule(dev, mod, nil)
	dsl, err := c.setLayout(nbind)
	if err != nil {
		return nil, err
	}
	var layout vulkan.PipelineLayout
	if err := check(vulkan.CreatePipelineLayout(dev, &vulkan.PipelineLayoutCreateInfo{
		SType:                  vulkan.StructureTypePipelineLayoutCreateInfo,
		SetLayoutCount:         1,
		PSetLayouts:            []vulkan.DescriptorSetLayout{dsl},
		PushConstantRangeCount: 1,
		PPushConstantRanges: []vulkan.PushConstantRange{{
			StageFlags: vulkan.ShaderStageFlags(vulkan.ShaderStageComputeBit), Offset: 0, Size: pushBytes,
		}},
	}, nil, &layout), "vkCreatePipelineLayout", k.shader); err != nil {
		return nil, err
	}
	stage := vulkan.PipelineShaderStageCreateInfo{
		SType:  vulkan.StructureTypePipelineShaderStageCreateInfo,
		Stage:  vulkan.ShaderStageComputeBit,
		Module: mod,
		PName:  cstr("main"),
	}
	if len(k.spec) > 0 {
		entries := make([]vulkan.SpecializationMapEntry, len(k.spec))
		for i := range k.spec {
			entries[i] = vulkan.SpecializationMapEntry{ConstantID: uint32(i), Offset: uint32(4 * i), Size: 4}
		}
		data := make([]byte, 4*len(k.spec))
		copy(data, unsafe.Slice((*byte)(unsafe.Pointer(&k.spec[0])), len(data)))
		stage.PSpecializationInfo = []vulkan.SpecializationInfo{{
			MapEntryCount: uint32(len(entries)),
			PMapEntries:   entries,
			DataSize:      uint(len(data)),
			PData:         unsafe.Pointer(&data[0]),
		}}
	}
	pipes := make([]vulkan.Pipeline, 1)
	c.d.setCreating(key)
	defer c.d.setCreating("")
	if err := check(vulkan.CreateComputePipelines(dev, nil, 1, []vulkan.ComputePipelineCreateInfo{{
		SType:  vulkan.StructureTypeComputePipelineCreateInfo,
		Stage:  stage,
		Layout: layout,
	}}, nil, pipes), "vkCreateComputePipelines", key); err != nil {
		vulkan.DestroyPipelineLayout(dev, layout, nil)
		return nil, err
	}
	p := &pipeline{pipe: pipes[0], layout: layout, dsl: dsl, nbind: nbind}
	c.pipes[key] = p
	return p, nil
}

func (c *pipelineCache) destroy() {
	for _, p := range c.pipes {
		vulkan.DestroyPipeline(c.d.dev, p.pipe, nil)
		vulkan.DestroyPipelineLayout(c.d.dev, p.layout, nil)
	}
	for _, l := range c.layouts {
		vulkan.DestroyDescriptorSetLayout(c.d.dev, l, nil)
	}
	c.pipes, c.layouts = nil, nil
}

func (d *Device) setCreating(key string) {
	d.mu.Lock()
	d.creating = key
	d.mu.Unlock()
}
