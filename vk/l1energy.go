package vk

import "fmt"

// The planning energy of spec planning §1: one mean L1 distance per candidate, reduced on the device so
// that only B floats come back to the host per rollout step.

// l1EnergyPush mirrors the push block of shaders/l1_energy.comp.
type l1EnergyPush struct {
	Rows      uint32
	M         uint32
	EnergyOff uint32
	XOff      uint32
	GoalOff   uint32
	Scale     float32
}

// L1Energy computes energy[b] = Σ_e |x[b, e] − goal[e]| / M (overwritten) for b < B: the mean absolute
// difference of each row of x [B, M] (a candidate's predicted frame, HW·D flattened) from goal [M]. energy
// is f32 [B]; x may have any shape of B·M elements. Views need no alignment. One workgroup reduces each
// row in a fixed order, so a row's energy does not depend on B or on how the rows are split.
func L1Energy(s *Stream, energy, x, goal Tensor) {
	l1Energy(s, energy, x, goal, 0)
}

// l1Energy is L1Energy in dispatches of at most chunk rows (0: as many as the binding range allows).
func l1Energy(s *Stream, energy, x, goal Tensor, chunk int) {
	const op = "l1 energy"
	checkF32(op, energy, x, goal)
	B, M := energy.Numel(), goal.Numel()
	if M == 0 || x.Numel() != B*M {
		panic(fmt.Sprintf("vk: %s: x %v, want %d rows of goal's %d elements (energy %v)", op, x, B, M, energy))
	}
	if B == 0 {
		return
	}
	if chunk <= 0 {
		chunk = max(1, int((s.d.MaxBinding()-s.d.mem.align)/(uint64(M)*4)))
	}
	energy, x, goal = flatView(energy), flatView(x), flatView(goal)
	gw, goff := s.gemmWindow(goal, 0, M)
	k := kernel{"l1_energy", []uint32{local1D}}
	forChunks(B, chunk, func(r0, n int) {
		ew, eoff := s.gemmWindow(energy, r0, r0+n)
		xw, xoff := s.gemmWindow(x, r0*M, (r0+n)*M)
		push := l1EnergyPush{Rows: uint32(n), M: uint32(M), EnergyOff: eoff, XOff: xoff, GoalOff: goff,
			Scale: float32(1 / float64(M))}
		s.dispatch(op, k, push, s.grid1D(n, 1), out(ew), in(xw), in(gw))
	})
}
