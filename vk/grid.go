package vk

// local1D is the default workgroup size of 1-D elementwise shaders (specialization constant 0).
const local1D = 256

// grid1D covers n invocations with groups of local, folding into y past the device's x limit; shaders
// recover the flat index with GLOBAL_INDEX_1D from common.glsl.
func (s *Stream) grid1D(n, local int) [3]int {
	g := (n + local - 1) / local
	if g == 0 {
		return [3]int{0, 1, 1}
	}
	maxX := s.d.Info.MaxWorkgroupCount[0]
	if g <= maxX {
		return [3]int{g, 1, 1}
	}
	return [3]int{maxX, (g + maxX - 1) / maxX, 1}
}
