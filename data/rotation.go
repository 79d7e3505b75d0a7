package data

import (
	"math"

	"github.com/go-gl/mathgl/mgl64"
)

// State is one 7-D robot state, spec vjepa2-ac §7.4: [x, y, z, α, β, γ, g] with the position in metres in
// the robot base frame, the orientation as scipy extrinsic "xyz" Euler angles in radians, and the
// gripper in [0, 1] (0 open, 1 closed).
type State [7]float64

// Action is one 7-D action, spec vjepa2-ac §7.5: [Δx, Δy, Δz, euler_xyz(R_{t+1}·R_tᵀ), Δg].
type Action [7]float64

// EulerXYZToMatrix returns the rotation of scipy's Rotation.from_euler("xyz", [α, β, γ]): extrinsic
// rotations about the fixed x, then y, then z axes, R = Rz(γ)·Ry(β)·Rx(α) (spec §7.4).
func EulerXYZToMatrix(alpha, beta, gamma float64) mgl64.Mat3 {
	return mgl64.Rotate3DZ(gamma).Mul3(mgl64.Rotate3DY(beta)).Mul3(mgl64.Rotate3DX(alpha))
}

// gimbalEps is scipy's threshold on the middle angle's distance to ±π/2 below which it declares gimbal
// lock (scipy/spatial/transform: eps = 1e-7 in _compute_euler_from_quat).
const gimbalEps = 1e-7

// MatrixToEulerXYZ inverts EulerXYZToMatrix with scipy's as_euler("xyz") ranges: α and γ in [−π, π],
// β in [−π/2, π/2] (spec §7.5). Away from gimbal lock
//
//	α = atan2(M21, M22), β = −asin(M20), γ = atan2(M10, M00);
//
// β is computed as atan2(−M20, hypot(M00, M10)), which equals −asin(M20) for a rotation but keeps full
// precision near ±π/2. In gimbal lock (β within 1e-7 of ±π/2) only α−γ (β = π/2) or α+γ (β = −π/2) is
// determined; like scipy we set γ = 0 and put the whole angle into α.
func MatrixToEulerXYZ(m mgl64.Mat3) (alpha, beta, gamma float64) {
	m00, m10, m20 := m.At(0, 0), m.At(1, 0), m.At(2, 0)
	cosBeta := math.Hypot(m00, m10)
	beta = math.Atan2(-m20, cosBeta)
	if math.Abs(math.Abs(beta)-math.Pi/2) > gimbalEps {
		return math.Atan2(m.At(2, 1), m.At(2, 2)), beta, math.Atan2(m10, m00)
	}
	// R = Rz(γ)·Ry(±π/2)·Rx(α) has M01 = ±sin(α∓γ), M11 = cos(α∓γ).
	if beta > 0 {
		return math.Atan2(m.At(0, 1), m.At(1, 1)), beta, 0
	}
	return math.Atan2(-m.At(0, 1), m.At(1, 1)), beta, 0
}

// rotationOf returns the orientation matrix of a state.
func (s State) rotation() mgl64.Mat3 { return EulerXYZToMatrix(s[3], s[4], s[5]) }

// StatesToActions is poses_to_diffs (spec §7.5): for t = 0..T−2
//
//	a_t = [p_{t+1} − p_t, euler_xyz(R_{t+1}·R_tᵀ), g_{t+1} − g_t]
//
// The rotation delta is left-multiplied (base frame) and never a difference of Euler angles, which
// would wrap wrongly near roll = ±π where DROID spends most of its time.
func StatesToActions(states []State) []Action {
	if len(states) < 2 {
		return nil
	}
	actions := make([]Action, len(states)-1)
	r0 := states[0].rotation()
	for t := range actions {
		s0, s1 := states[t], states[t+1]
		r1 := s1.rotation()
		a, b, g := MatrixToEulerXYZ(r1.Mul3(r0.Transpose()))
		actions[t] = Action{s1[0] - s0[0], s1[1] - s0[1], s1[2] - s0[2], a, b, g, s1[6] - s0[6]}
		r0 = r1
	}
	return actions
}

// ComputeNewPose is the inverse of one action (spec §7.5, the planning helper compute_new_pose):
// p' = p + Δp, R' = R(Δeuler)·R, g' = clip(g + Δg, 0, 1).
func ComputeNewPose(s State, a Action) State {
	r := EulerXYZToMatrix(a[3], a[4], a[5]).Mul3(s.rotation())
	alpha, beta, gamma := MatrixToEulerXYZ(r)
	return State{s[0] + a[0], s[1] + a[1], s[2] + a[2], alpha, beta, gamma, min(max(s[6]+a[6], 0), 1)}
}

// RotationAngle returns the angle in radians of the rotation m (its geodesic distance to identity).
func RotationAngle(m mgl64.Mat3) float64 {
	c := (m.At(0, 0) + m.At(1, 1) + m.At(2, 2) - 1) / 2
	return math.Acos(min(max(c, -1), 1))
}
