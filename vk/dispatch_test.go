package vk_test

import (
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// BenchmarkDispatch measures what one dispatch and one barrier cost, the fixed price of the small ops that
// dominate short steps on CPU drivers (the demo's step records about 270 dispatches). Each run replays a
// recorded stream of 256 Adds of 64 elements, so the work itself is negligible:
//
//   - independent: every Add writes its own output, so the stream has no barrier;
//   - chained: every Add reads the previous one's output, so a barrier precedes each;
//   - single: one Add, the price of a submit and its wait, which the other two include once.
//
// µs/dispatch is (run − single)/255. It opens its own device without the validation layer, whose checks
// at submit would be counted otherwise.
func BenchmarkDispatch(b *testing.B) {
	d, err := vk.Open(vk.Options{})
	if err != nil {
		b.Fatalf("open Vulkan device: %v", err)
	}
	defer d.Close()
	const n, ops = 64, 256
	x := vktest.Tensor(b, d, vk.F32, vktest.Rand(1, n), n)
	ys := make([]vk.Tensor, ops)
	for i := range ys {
		ys[i] = vktest.Tensor(b, d, vk.F32, nil, n)
	}
	record := map[string]func(s *vk.Stream){
		"single": func(s *vk.Stream) { vk.Add(s, ys[0], x, x) },
		"independent": func(s *vk.Stream) {
			for _, y := range ys {
				vk.Add(s, y, x, x)
			}
		},
		"chained": func(s *vk.Stream) {
			vk.Add(s, ys[0], x, x)
			for i := 1; i < ops; i++ {
				vk.Add(s, ys[i], ys[i-1], x)
			}
		},
	}
	runTime := map[string]float64{} // seconds per run, for µs/dispatch
	for _, name := range []string{"single", "independent", "chained"} {
		b.Run(name, func(b *testing.B) {
			s, err := d.NewStream(false)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Destroy()
			record[name](s)
			vktest.Run(b, s) // warm-up: pipelines compiled, descriptor sets made
			dispatches, barriers := s.Stats()
			b.ResetTimer()
			for range b.N {
				vktest.Run(b, s)
			}
			perRun := b.Elapsed().Seconds() / float64(b.N)
			runTime[name] = perRun
			b.ReportMetric(float64(dispatches), "dispatches")
			b.ReportMetric(float64(barriers), "barriers")
			if single, ok := runTime["single"]; ok && name != "single" {
				b.ReportMetric((perRun-single)/float64(ops-1)*1e6, "µs/dispatch")
			}
		})
	}
}
