package vk

// Tests that the Vulkan calls taking structs are safe under the garbage collector (see shim.go).
//
// TestGCStress repeats each such call while another goroutine collects garbage without pause. Before the
// shim, vulkan-go freed its C copies of the structs from finalizers, so a collection during a call handed
// the driver freed memory. Each case runs in a child process with glibc's tcache off and MALLOC_PERTURB_
// set, so that freed memory is at once overwritten with 0xa5 bytes: a pointer read from it faults and a
// count read from it is absurd (std::bad_alloc in the layer), instead of the old contents happening to
// survive. The Mesa shader cache is off, as in the crash report, so that every pipeline is compiled. A
// collection must land inside a call, so a short call is caught only in some runs; TestVulkanGoCalls is
// the deterministic half: it fails on any vulkan-go call not known to be safe.

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"
)

const gcStressEnv = "VJEPA_VK_GC_STRESS"

// gcStressCase repeats calls (named for the failure message) on a validated device d (nil for "open",
// which opens its own).
type gcStressCase struct {
	name  string
	calls string
	run   func(t *testing.T, d *Device)
}

var gcStressCases = []gcStressCase{
	{"pipelines", "vkCreateShaderModule, vkCreateDescriptorSetLayout, vkCreatePipelineLayout, vkCreateComputePipelines", gcStressPipelines},
	{"dispatch", "vkAllocateCommandBuffers, vkBeginCommandBuffer, vkCreateDescriptorPool, vkAllocateDescriptorSets, vkUpdateDescriptorSets, vkCmdPipelineBarrier", gcStressDispatch},
	{"submit", "vkCreateQueryPool, vkCreateFence, vkQueueSubmit", gcStressSubmit},
	{"copy", "vkCreateBuffer, vkGetBufferMemoryRequirements, vkAllocateMemory, vkAllocateCommandBuffers, vkBeginCommandBuffer, vkCmdCopyBuffer, vkQueueSubmit", gcStressCopy},
	{"open", "vkCreateInstance, vkGetPhysicalDeviceQueueFamilyProperties, vkGetPhysicalDeviceMemoryProperties, vkCreateCommandPool", gcStressOpen},
}

// TestGCStress runs each case in a child process, so that a crash fails one subtest with the start of
// its output (the signal and the crashing goroutine come first) rather than killing the package's test
// binary.
func TestGCStress(t *testing.T) {
	for _, c := range gcStressCases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestGCStressChild$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), gcStressEnv+"="+c.name, "MESA_SHADER_CACHE_DISABLE=true",
				"GLIBC_TUNABLES=glibc.malloc.tcache_count=0", "MALLOC_PERTURB_=165")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("%s under a collector running without pause: %v\n%s", c.calls, err, outputHead(out, 50))
			}
		})
	}
}

// TestGCStressChild is one case of TestGCStress, chosen by VJEPA_VK_GC_STRESS.
func TestGCStressChild(t *testing.T) {
	name := os.Getenv(gcStressEnv)
	if name == "" {
		t.Skip("runs as a child process of TestGCStress")
	}
	i := slices.IndexFunc(gcStressCases, func(c gcStressCase) bool { return c.name == name })
	if i < 0 {
		t.Fatalf("%s=%q: no such case", gcStressEnv, name)
	}
	var d *Device
	if name != "open" {
		var err error
		if d, err = Open(Options{Validate: true, BlockBytes: 1 << 20}); err != nil {
			t.Fatalf("open Vulkan device with validation: %v", err)
		}
		defer d.Close()
	}
	stop := collectWithoutPause()
	gcStressCases[i].run(t, d)
	n := stop()
	t.Logf("%d collections", n)
	if n < 10 {
		t.Errorf("only %d collections ran during the case: it stressed nothing", n)
	}
	if d != nil {
		if msgs := d.TakeMessages(); len(msgs) > 0 {
			t.Errorf("%d validation messages:\n%s", len(msgs), strings.Join(msgs, "\n"))
		}
	}
}

// collectWithoutPause runs runtime.GC in a loop on another goroutine until the returned function is
// called; that function returns how many collections ran.
func collectWithoutPause() (stop func() int) {
	var halt atomic.Bool
	done := make(chan int)
	go func() {
		n := 0
		for !halt.Load() {
			runtime.GC()
			n++
		}
		done <- n
	}()
	return func() int {
		halt.Store(true)
		return <-done
	}
}

// gcStressPipelines is the crash report's reproduction: 200 pipelines with distinct specialization
// constants, compiled while the collector runs.
func gcStressPipelines(t *testing.T, d *Device) {
	for i := range 200 {
		nbind := 2 + i%(maxBindings-1) // 11 set layouts
		if _, err := d.pipes.get(kernel{"reduce.sum", []uint32{local1D, uint32(1024 + i)}}, strings.Repeat("b", nbind)); err != nil {
			t.Fatalf("pipeline %d: %v", i, err)
		}
	}
	if n := len(d.pipes.pipes); n != 200 {
		t.Fatalf("%d pipelines cached, want 200", n)
	}
}

// gcStressDispatch records streams of dependent dispatches (a barrier before each) over more descriptor
// sets than one pool holds, runs them and checks the result.
func gcStressDispatch(t *testing.T, d *Device) {
	const n, adds = 1000, setsPerPool + 100
	x, y := gcStressTensor(t, d, n), gcStressTensor(t, d, n)
	for round := range 10 {
		s, err := d.NewStream(false)
		if err != nil {
			t.Fatal(err)
		}
		Fill(s, y, 0)
		for range adds {
			Add(s, y, y, x) // reads the previous dispatch's y
		}
		if err := s.Run(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if _, barriers := s.Stats(); barriers != adds {
			t.Fatalf("round %d: %d barriers, want %d", round, barriers, adds)
		}
		s.Destroy()
		gcStressCheck(t, d, y, x, adds)
	}
}

// gcStressSubmit submits one recorded stream many times, after a timed stream (its query pool holds
// 16384 timestamps, which validation makes slow to reset) has run once.
func gcStressSubmit(t *testing.T, d *Device) {
	const n, runs = 1000, 2000
	x, y := gcStressTensor(t, d, n), gcStressTensor(t, d, n)
	timed, err := d.NewStream(true)
	if err != nil {
		t.Fatal(err)
	}
	defer timed.Destroy()
	Fill(timed, y, 0)
	if err := timed.Run(); err != nil {
		t.Fatal(err)
	}
	if d.Info.TimestampPeriodNanos > 0 && len(timed.Timings()) != 1 {
		t.Fatalf("%d timings, want 1", len(timed.Timings()))
	}
	s, err := d.NewStream(false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	Add(s, y, y, x)
	for i := range runs {
		if err := s.Run(); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	gcStressCheck(t, d, y, x, runs)
}

// gcStressTensor returns an f32 tensor of n small integers (exact in sums).
func gcStressTensor(t *testing.T, d *Device, n int) Tensor {
	x, err := d.NewTensor(F32, n)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%97 - 48)
	}
	if err := d.Upload(x, v); err != nil {
		t.Fatal(err)
	}
	return x
}

// gcStressCheck fails unless y = times·x exactly.
func gcStressCheck(t *testing.T, d *Device, y, x Tensor, times int) {
	t.Helper()
	got, err := d.Download(y)
	if err != nil {
		t.Fatal(err)
	}
	xs, err := d.Download(x)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if want := float32(times) * xs[i]; got[i] != want {
			t.Fatalf("y[%d] = %g, want %g", i, got[i], want)
		}
	}
}

// gcStressCopy copies between buffers (new ones every 100 copies), checking every byte that arrives.
func gcStressCopy(t *testing.T, d *Device) {
	const size, copies = 4096, 4000
	var src, dst *block
	for i := range copies {
		if i%100 == 0 {
			if src != nil {
				d.mem.destroyBlock(src)
				d.mem.destroyBlock(dst)
			}
			var err error
			if src, err = d.mem.newBlock(size, true); err != nil {
				t.Fatal(err)
			}
			if dst, err = d.mem.newBlock(size, true); err != nil {
				t.Fatal(err)
			}
		}
		s := unsafe.Slice((*byte)(src.mapped), size)
		for j := range s {
			s[j] = byte(i + j*7)
		}
		got := unsafe.Slice((*byte)(dst.mapped), size)
		clear(got)
		srcOff, dstOff, n := uint64(i%16)*64, uint64(i%5)*128, uint64(1024+i%1024)
		if err := d.copyBuffer(src.buf, srcOff, dst.buf, dstOff, n, "gc stress copy"); err != nil {
			t.Fatal(err)
		}
		want := make([]byte, size)
		copy(want[dstOff:dstOff+n], s[srcOff:srcOff+n])
		if !bytes.Equal(got, want) {
			t.Fatalf("copy %d: [%d, +%d) to %d: destination differs", i, srcOff, n, dstOff)
		}
	}
	d.mem.destroyBlock(src)
	d.mem.destroyBlock(dst)
}

// gcStressOpen opens and closes validated devices.
func gcStressOpen(t *testing.T, _ *Device) {
	for i := range 8 {
		d, err := Open(Options{Validate: true, BlockBytes: 1 << 20})
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if _, err := d.NewTensor(F32, 16); err != nil { // a memory type is chosen
			t.Fatalf("open %d: %v", i, err)
		}
		msgs := d.TakeMessages()
		d.Close()
		if len(msgs) > 0 {
			t.Fatalf("open %d: %d validation messages:\n%s", i, len(msgs), strings.Join(msgs, "\n"))
		}
	}
}

// outputHead returns the first n lines of a child's output.
func outputHead(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("[%d more lines]", len(lines)-n))
	}
	return strings.Join(lines, "\n")
}

// vulkanGoCalls lists every vulkan-go function (and type conversion) the package may call, with why the
// call hands the driver no memory that a finalizer owns: it takes only handles and scalars, or passes its
// Go pointer straight through as a C call argument, which cgo keeps alive for the call. A call that takes
// a struct belongs in shim.c.
var vulkanGoCalls = map[string]string{
	"Init": "loader setup", "SetGetInstanceProcAddr": "loader setup", "InitInstance": "loads entry points",
	"EnumeratePhysicalDevices": "count pointer and output slice passed through",
	"GetDeviceQueue":           "handles; output pointer passed through",
	"DeviceWaitIdle":           "handle", "EndCommandBuffer": "handle", "ResetCommandBuffer": "handle and flags",
	"FreeCommandBuffers": "handle slice passed through", "WaitForFences": "handle slice passed through",
	"BindBufferMemory": "handles", "MapMemory": "output pointer passed through", "UnmapMemory": "handles",
	"FreeMemory":            "handles",
	"GetQueryPoolResults":   "output pointer passed through",
	"CmdBindPipeline":       "handles",
	"CmdBindDescriptorSets": "handle slice passed through",
	"CmdPushConstants":      "data pointer passed through",
	"CmdDispatch":           "handle and counts", "CmdResetQueryPool": "handles", "CmdWriteTimestamp": "handles",
	"DestroyInstance": "handle", "DestroyDevice": "handle", "DestroyCommandPool": "handles",
	"DestroyBuffer": "handles", "DestroyFence": "handles", "DestroyQueryPool": "handles",
	"DestroyShaderModule": "handles", "DestroyDescriptorSetLayout": "handles", "DestroyDescriptorPool": "handles",
	"DestroyPipelineLayout": "handles", "DestroyPipeline": "handles", "DestroyBufferView": "handles",
	"Result": "conversion", "DeviceSize": "conversion", "Device": "conversion",
	"QueryResultFlags": "conversion", "ShaderStageFlags": "conversion", "QueueFlagBits": "conversion",
	"MemoryPropertyFlagBits": "conversion",
}

// TestVulkanGoCalls fails when the package calls a vulkan-go function not known to be safe under the
// collector (see shim.go): the deterministic half of TestGCStress.
func TestVulkanGoCalls(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		alias := ""
		for _, imp := range f.Imports {
			if imp.Path.Value == `"github.com/vulkan-go/vulkan"` {
				alias = "vulkan"
				if imp.Name != nil {
					alias = imp.Name.Name
				}
			}
		}
		if alias == "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == alias {
				if _, ok := vulkanGoCalls[sel.Sel.Name]; !ok {
					t.Errorf("%s: vulkan.%s: not a vulkan-go call known to hand the driver only memory the call keeps alive; "+
						"route a call that takes a struct through shim.c, or list this one in vulkanGoCalls with the reason",
						fset.Position(call.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
	}
}
