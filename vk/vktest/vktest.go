// Package vktest holds helpers for tests of Vulkan ops: a shared validated device, seeded inputs, poisoned
// outputs and element-wise comparison that reports the worst element.
package vktest

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
)

// init gives each test binary a Mesa shader cache of its own (unless the caller chose one). With the
// default, one cache shared by every process, lavapipe's vkCreateComputePipelines aborted now and then
// with std::bad_alloc while `go test ./...` ran several packages' binaries at once (2 of 6 full runs
// here; 0 of 3 with the cache off). A per-binary cache keeps the speed of a warm cache.
func init() {
	if os.Getenv("MESA_SHADER_CACHE_DIR") == "" && os.Getenv("MESA_SHADER_CACHE_DISABLE") == "" {
		dir := filepath.Join(os.TempDir(), "vjepa-vk-mesa-cache", filepath.Base(os.Args[0]))
		if err := os.MkdirAll(dir, 0o755); err == nil {
			os.Setenv("MESA_SHADER_CACHE_DIR", dir)
		}
	}
}

var shared struct {
	once sync.Once
	dev  *vk.Device
	err  error
}

// Device returns the package's shared device (lavapipe or a GPU, per VJEPA_VK_DEVICE) with the Khronos
// validation layer on. Any validation message produced while the test runs fails the test. A missing
// device fails rather than skips: every op must be tested. Messages are reported with the failing test
// rather than printed as they arrive.
func Device(t testing.TB) *vk.Device {
	t.Helper()
	shared.once.Do(func() {
		shared.dev, shared.err = vk.Open(vk.Options{Validate: true, Messages: io.Discard})
	})
	if shared.err != nil {
		t.Fatalf("open Vulkan device with validation: %v", shared.err)
	}
	d := shared.dev
	d.TakeMessages()
	t.Cleanup(func() {
		if msgs := d.TakeMessages(); len(msgs) > 0 {
			t.Errorf("%d validation messages:\n%s", len(msgs), strings.Join(msgs, "\n"))
		}
	})
	return d
}

// Stream returns a fresh stream on d, destroyed when the test ends.
func Stream(t testing.TB, d *vk.Device) *vk.Stream {
	t.Helper()
	s, err := d.NewStream(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Destroy)
	return s
}

// Tensor allocates a tensor freed when the test ends, filled with v when v is non-nil.
func Tensor(t testing.TB, d *vk.Device, dt vk.DType, v []float32, shape ...int) vk.Tensor {
	t.Helper()
	x, err := d.NewTensor(dt, shape...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Free(x) })
	if v != nil {
		if err := d.Upload(x, v); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// Poisoned allocates an f32 (or f16/bf16) tensor filled with NaN, so that an element the op forgets to
// write shows up.
func Poisoned(t testing.TB, d *vk.Device, dt vk.DType, shape ...int) vk.Tensor {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return Tensor(t, d, dt, NaNs(n), shape...)
}

// Download reads a tensor as float32, failing the test on error.
func Download(t testing.TB, d *vk.Device, x vk.Tensor) []float32 {
	t.Helper()
	v, err := d.Download(x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Run runs the stream, failing the test on error.
func Run(t testing.TB, s *vk.Stream) {
	t.Helper()
	if err := s.Run(); err != nil {
		t.Fatal(err)
	}
}

// NaNs returns n NaNs.
func NaNs(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return v
}

// Rand returns n values uniform in [-1, 1) from a seeded generator.
func Rand(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(2*r.Float64() - 1)
	}
	return v
}

// RandN returns n standard-normal values from a seeded generator.
func RandN(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x2545f4914f6cdd1d))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// F64 widens float32 values for the float64 references.
func F64(v []float32) []float64 {
	o := make([]float64, len(v))
	for i, x := range v {
		o[i] = float64(x)
	}
	return o
}

// F32 narrows float64 values.
func F32(v []float64) []float32 {
	o := make([]float32, len(v))
	for i, x := range v {
		o[i] = float32(x)
	}
	return o
}

// Close fails the test unless |got-want| <= atol + rtol·|want| everywhere, reporting the worst element
// and the max absolute and relative errors. It returns the max absolute error.
func Close(t testing.TB, name string, got []float32, want []float64, rtol, atol float64) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	worst, worstIdx := -1.0, -1
	maxAbs, maxRel := 0.0, 0.0
	for i := range got {
		g, w := float64(got[i]), want[i]
		d := math.Abs(g - w)
		if math.IsNaN(g) != math.IsNaN(w) || (math.IsNaN(d) && !math.IsNaN(w)) {
			d = math.Inf(1)
		}
		if math.IsNaN(g) && math.IsNaN(w) {
			d = 0
		}
		maxAbs = math.Max(maxAbs, d)
		if w != 0 {
			maxRel = math.Max(maxRel, d/math.Abs(w))
		}
		excess := d - (atol + rtol*math.Abs(w))
		if excess > 0 && excess > worst {
			worst, worstIdx = excess, i
		}
	}
	if worstIdx >= 0 {
		t.Errorf("%s: [%d] = %.7g, want %.7g (max abs err %.3g, max rel err %.3g; tol %.1g + %.1g·|want|)",
			name, worstIdx, got[worstIdx], want[worstIdx], maxAbs, maxRel, atol, rtol)
	}
	return maxAbs
}

// Name formats subtest names as key=value pairs: Name("rows", 3, "dim", 8) = "rows=3,dim=8".
func Name(kv ...any) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%v=%v", kv[i], kv[i+1])
	}
	return b.String()
}

// CPUSeconds is the user and system CPU time this process has used so far (the driver's worker threads
// included). Benchmarks report work per CPU-second next to wall-clock rates: on a CPU driver such as
// lavapipe sharing its cores with other processes, the former varies much less with their load.
func CPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
