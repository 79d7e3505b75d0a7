package vk

import "fmt"

// The planning energy of spec planning §1: one mean L1 distance per candidate, reduced on the device so
// that only B floats come back to the host per rollout step, and its gradient for the gradient planner.

// l1EnergyPush mirrors the push block of shaders/l1_energy.comp.
type l1EnergyPush struct {
	Rows       uint32
	M          uint32
	EnergyOff  uint32
	XOff       uint32
	GoalOff    uint32
	GoalStride uint32
	Scale      float32
}

// l1EnergyBackwardPush mirrors the push block of shaders/l1_energy_backward.comp.
type l1EnergyBackwardPush struct {
	Rows       uint32
	M          uint32
	DXOff      uint32
	XOff       uint32
	GoalOff    uint32
	GoalStride uint32
	DEnergyOff uint32
	Scale      float32
}

// L1Energy computes energy[b] = Σ_e |x[b, e] − goal[b, e]| / M (overwritten) for b < B: the mean absolute
// difference of each row of x [B, M] (a candidate's predicted frame, HW·D flattened) from its goal. goal
// is [M], shared by every row, or [B, M], one per row (evaluation: each clip its own next frame). energy
// is f32 [B]; x and goal may have any shape of that many elements. Views need no alignment. One workgroup
// reduces each row in a fixed order, so a row's energy does not depend on B or on how the rows are split.
func L1Energy(s *Stream, energy, x, goal Tensor) {
	l1Energy(s, energy, x, goal, 0)
}

// l1EnergyShape checks the operands of the energy and its backward, returning B, M and the goal's row
// stride (0 for a shared goal).
func l1EnergyShape(op string, energy, x, goal Tensor) (B, M, stride int) {
	checkF32(op, energy, x, goal)
	B = energy.Numel()
	if B == 0 {
		return 0, 0, 0
	}
	M = x.Numel() / B
	switch {
	case M == 0 || x.Numel() != B*M:
		panic(fmt.Sprintf("vk: %s: x %v is not %d rows (energy %v)", op, x, B, energy))
	case goal.Numel() == M:
	case goal.Numel() == B*M:
		stride = M
	default:
		panic(fmt.Sprintf("vk: %s: goal %v, want %d elements (shared) or %d rows of them (x %v)", op, goal, M, B, x))
	}
	return B, M, stride
}

// l1Energy is L1Energy in dispatches of at most chunk rows (0: as many as the binding range allows).
func l1Energy(s *Stream, energy, x, goal Tensor, chunk int) {
	const op = "l1 energy"
	B, M, stride := l1EnergyShape(op, energy, x, goal)
	if B == 0 {
		return
	}
	if chunk <= 0 {
		chunk = max(1, int((s.d.MaxBinding()-s.d.mem.align)/(uint64(M)*4)))
	}
	energy, x, goal = flatView(energy), flatView(x), flatView(goal)
	k := kernel{"l1_energy", []uint32{local1D}}
	forChunks(B, chunk, func(r0, n int) {
		ew, eoff := s.gemmWindow(energy, r0, r0+n)
		xw, xoff := s.gemmWindow(x, r0*M, (r0+n)*M)
		gw, goff := s.gemmWindow(goal, r0*stride, r0*stride+max(n*stride, M))
		push := l1EnergyPush{Rows: uint32(n), M: uint32(M), EnergyOff: eoff, XOff: xoff, GoalOff: goff,
			GoalStride: uint32(stride), Scale: float32(1 / float64(M))}
		s.dispatch(op, k, push, s.grid1D(n, 1), out(ew), in(xw), in(gw))
	})
}

// L1EnergyBackward computes dx[b, e] = denergy[b]·sign(x[b, e] − goal[b, e])/M (overwritten, sign(0) = 0
// as in PyTorch): the gradient of L1Energy's energies, seeded per row by denergy [B]. dx and x are [B, M]
// (any shape of B·M elements), goal [M] (shared) or [B, M]. dx must not overlap x or goal.
func L1EnergyBackward(s *Stream, dx, x, goal, denergy Tensor) {
	l1EnergyBackward(s, dx, x, goal, denergy, 0)
}

// l1EnergyBackward is L1EnergyBackward in dispatches of at most chunk rows (0: as many as fit a binding).
func l1EnergyBackward(s *Stream, dx, x, goal, denergy Tensor, chunk int) {
	const op = "l1 energy backward"
	B, M, stride := l1EnergyShape(op, denergy, x, goal)
	checkF32(op, dx)
	if dx.Numel() != x.Numel() {
		panic(fmt.Sprintf("vk: %s: dx %v, want x's %d elements (x %v)", op, dx, x.Numel(), x))
	}
	if overlaps(dx, x) || overlaps(dx, goal) {
		panic(fmt.Sprintf("vk: %s: dx %v overlaps x %v or goal %v", op, dx, x, goal))
	}
	if B == 0 {
		return
	}
	if chunk <= 0 {
		chunk = max(1, int((s.d.MaxBinding()-s.d.mem.align)/(uint64(M)*4)))
	}
	dx, x, goal, denergy = flatView(dx), flatView(x), flatView(goal), flatView(denergy)
	k := kernel{"l1_energy_backward", []uint32{local1D}}
	forChunks(B, chunk, func(r0, n int) {
		dw, doff := s.gemmWindow(dx, r0*M, (r0+n)*M)
		xw, xoff := s.gemmWindow(x, r0*M, (r0+n)*M)
		gw, goff := s.gemmWindow(goal, r0*stride, r0*stride+max(n*stride, M))
		ew, eoff := s.gemmWindow(denergy, r0, r0+n)
		push := l1EnergyBackwardPush{Rows: uint32(n), M: uint32(M), DXOff: doff, XOff: xoff, GoalOff: goff,
			GoalStride: uint32(stride), DEnergyOff: eoff, Scale: float32(1 / float64(M))}
		s.dispatch(op, k, push, s.grid1D(n*M, local1D), out(dw), in(xw), in(gw), in(ew))
	})
}
