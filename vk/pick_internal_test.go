package vk

import "testing"

// TestPick: the selector wins; without one, local rank k takes the k-th device of the best type,
// wrapping around (more ranks than GPUs on a node share them), never a device of a worse type.
func TestPick(t *testing.T) {
	infos := []DeviceInfo{{Name: "llvmpipe", Type: "cpu"}, {Name: "GPU A", Type: "discrete"},
		{Name: "iGPU", Type: "integrated"}, {Name: "GPU B", Type: "discrete"}}
	for _, c := range []struct {
		selector  string
		localRank int
		want      int
	}{
		{"", 0, 1}, {"", 1, 3}, {"", 2, 1}, {"", 5, 3},
		{"0", 1, 0}, {"igpu", 3, 2},
	} {
		got, err := pick(infos, c.selector, c.localRank)
		if err != nil || got != c.want {
			t.Errorf("pick(selector %q, local rank %d) = %d, %v; want %d", c.selector, c.localRank, got, err, c.want)
		}
	}
	if got, _ := pick(infos[:1], "", 3); got != 0 {
		t.Errorf("one CPU device, local rank 3: %d, want 0", got)
	}
}
