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

func (k kernel) key(kinds string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s", k.shader, kinds)
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
	layouts map[string]vulkan.DescriptorSetLayout // by bindingKinds
}

func newPipelineCache(d *Device) *pipelineCache {
	return &pipelineCache{d: d, pipes: map[string]*pipeline{}, layouts: map[string]vulkan.DescriptorSetLayout{}}
}

func (c *pipelineCache) setLayout(kinds string) (vulkan.DescriptorSetLayout, error) {
	if l, ok := c.layouts[kinds]; ok {
		return l, nil
	}
	l, r := c.d.calls.createSetLayout(kinds)
	if err := check(r, "vkCreateDescriptorSetLayout", "bindings %s", kinds); err != nil {
		return nil, err
	}
	c.layouts[kinds] = l
	return l, nil
}

// get returns the pipeline for k with bindings of the given kinds (bindingKinds), building it on first use.
func (c *pipelineCache) get(k kernel, kinds string) (*pipeline, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := k.key(kinds)
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
	mod, r := c.d.calls.createShaderModule(words)
	if err := check(r, "vkCreateShaderModule", k.shader); err != nil {
		return nil, err
	}
	defer vulkan.DestroyShaderModule(dev, mod, nil)
	dsl, err := c.setLayout(kinds)
	if err != nil {
		return nil, err
	}
	layout, r := c.d.calls.createPipelineLayout(dsl, pushBytes)
	if err := check(r, "vkCreatePipelineLayout", k.shader); err != nil {
		return nil, err
	}
	c.d.setCreating(key)
	defer c.d.setCreating("")
	pipe, r := c.d.calls.createComputePipeline(mod, layout, k.spec)
	if err := check(r, "vkCreateComputePipelines", key); err != nil {
		vulkan.DestroyPipelineLayout(dev, layout, nil)
		return nil, err
	}
	p := &pipeline{pipe: pipe, layout: layout, dsl: dsl, nbind: len(kinds)}
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
