package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/go-gl/mathgl/mgl64"
)

// closedFormXYZ is Rz(γ)·Ry(β)·Rx(α) multiplied out by hand (row-major [3][3]).
func closedFormXYZ(a, b, g float64) [3][3]float64 {
	ca, sa, cb, sb, cg, sg := math.Cos(a), math.Sin(a), math.Cos(b), math.Sin(b), math.Cos(g), math.Sin(g)
	return [3][3]float64{
		{cg * cb, cg*sb*sa - sg*ca, cg*sb*ca + sg*sa},
		{sg * cb, sg*sb*sa + cg*ca, sg*sb*ca - cg*sa},
		{-sb, cb * sa, cb * ca},
	}
}

func matClose(t *testing.T, name string, got mgl64.Mat3, want [3][3]float64, tol float64) {
	t.Helper()
	worst, wi, wj := 0.0, 0, 0
	for i := range 3 {
		for j := range 3 {
			if d := math.Abs(got.At(i, j) - want[i][j]); d > worst {
				worst, wi, wj = d, i, j
			}
		}
	}
	if worst > tol {
		t.Fatalf("%s: M[%d][%d] = %.9f, want %.9f (max abs err %.2e > %.0e)", name, wi, wj, got.At(wi, wj), want[wi][wj], worst, tol)
	}
}

// TestEulerXYZToMatrix checks against hand-computed matrices: the closed form and exact values for
// (α, β, γ) = (90°, 45°, 30°), which scipy's Rotation.from_euler("xyz", [90, 45, 30], degrees=True)
// reproduces: √6/4 = 0.612372, √2/4 = 0.353553.
func TestEulerXYZToMatrix(t *testing.T) {
	r6, r2, r3 := math.Sqrt(6)/4, math.Sqrt(2)/4, math.Sqrt(3)/2
	cases := []struct {
		name    string
		a, b, g float64
		want    [3][3]float64
	}{
		{"angles=0,0,0", 0, 0, 0, [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}},
		{"angles=90,0,0", math.Pi / 2, 0, 0, [3][3]float64{{1, 0, 0}, {0, 0, -1}, {0, 1, 0}}},
		{"angles=0,90,0", 0, math.Pi / 2, 0, [3][3]float64{{0, 0, 1}, {0, 1, 0}, {-1, 0, 0}}},
		{"angles=0,0,90", 0, 0, math.Pi / 2, [3][3]float64{{0, -1, 0}, {1, 0, 0}, {0, 0, 1}}},
		{"angles=90,45,30", math.Pi / 2, math.Pi / 4, math.Pi / 6,
			[3][3]float64{{r6, r6, 0.5}, {r2, r2, -r3}, {-math.Sqrt2 / 2, math.Sqrt2 / 2, 0}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			matClose(t, "EulerXYZToMatrix", EulerXYZToMatrix(tc.a, tc.b, tc.g), tc.want, 1e-15)
		})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 100 {
		a, b, g := rng.Float64()*7-3.5, rng.Float64()*7-3.5, rng.Float64()*7-3.5
		matClose(t, fmt.Sprintf("random %d", i), EulerXYZToMatrix(a, b, g), closedFormXYZ(a, b, g), 1e-14)
	}
}

// scipyEulerXYZ is scipy's as_euler("xyz") (extrinsic): Rotation.from_matrix (Markley's method) then
// _compute_euler_from_quat (Bernardes & Viollet 2022), written out for i=x, j=y, k=z. It is the
// independent reference MatrixToEulerXYZ is checked against, including scipy's gimbal-lock choice.
func scipyEulerXYZ(m mgl64.Mat3) [3]float64 {
	// from_matrix: pick the largest of the diagonal and the trace for stability.
	d := [4]float64{m.At(0, 0), m.At(1, 1), m.At(2, 2), m.At(0, 0) + m.At(1, 1) + m.At(2, 2)}
	k := 0
	for i := range d {
		if d[i] > d[k] {
			k = i
		}
	}
	var q [4]float64 // x, y, z, w
	if k == 3 {
		q = [4]float64{m.At(2, 1) - m.At(1, 2), m.At(0, 2) - m.At(2, 0), m.At(1, 0) - m.At(0, 1), 1 + d[3]}
	} else {
		i, j, l := k, (k+1)%3, (k+2)%3
		q[i] = 1 - d[3] + 2*m.At(i, i)
		q[j] = m.At(j, i) + m.At(i, j)
		q[l] = m.At(l, i) + m.At(i, l)
		q[3] = m.At(l, j) - m.At(j, l)
	}
	n := math.Sqrt(q[0]*q[0] + q[1]*q[1] + q[2]*q[2] + q[3]*q[3])
	for i := range q {
		q[i] /= n
	}
	// Tait-Bryan x-y-z, even permutation (sign = +1).
	a := q[3] - q[1]
	b := q[0] + q[2]
	c := q[1] + q[3]
	dd := q[2] - q[0]
	var ang [3]float64
	ang[1] = 2 * math.Atan2(math.Hypot(c, dd), math.Hypot(a, b))
	const eps = 1e-7
	halfSum, halfDiff := math.Atan2(b, a), math.Atan2(dd, c)
	switch {
	case math.Abs(ang[1]) <= eps:
		ang[0], ang[2] = 2*halfSum, 0
	case math.Abs(ang[1]-math.Pi) <= eps:
		ang[0], ang[2] = -2*halfDiff, 0 // extrinsic flips the sign
	default:
		ang[0], ang[2] = halfSum-halfDiff, halfSum+halfDiff
	}
	ang[1] -= math.Pi / 2
	for i := range ang {
		if ang[i] < -math.Pi {
			ang[i] += 2 * math.Pi
		} else if ang[i] > math.Pi {
			ang[i] -= 2 * math.Pi
		}
	}
	return ang
}

// angleDist is the distance between two angles modulo 2π (π and −π are the same angle).
func angleDist(a, b float64) float64 {
	d := math.Mod(math.Abs(a-b), 2*math.Pi)
	return min(d, 2*math.Pi-d)
}

func TestMatrixToEulerXYZ(t *testing.T) {
	cases := []struct {
		name       string
		a, b, g    float64
		wa, wb, wg float64
		gimbal     bool
	}{
		{"angles=0.1,0.2,0.3", 0.1, 0.2, 0.3, 0.1, 0.2, 0.3, false},
		{"angles=3.1,-0.4,-2.9", 3.1, -0.4, -2.9, 3.1, -0.4, -2.9, false},
		// α outside [−π, π] comes back wrapped.
		{"angles=4,0.1,0", 4, 0.1, 0, 4 - 2*math.Pi, 0.1, 0, false},
		// β beyond π/2 is the same rotation as (α+π, π−β, γ+π).
		{"angles=0.2,2,0.3", 0.2, 2, 0.3, 0.2 - math.Pi, math.Pi - 2, 0.3 - math.Pi, false},
		// Gimbal lock: only α−γ (β = π/2) or α+γ (β = −π/2) is defined; scipy sets γ = 0.
		{"angles=0.3,+90,0.2", 0.3, math.Pi / 2, 0.2, 0.1, math.Pi / 2, 0, true},
		{"angles=0.3,-90,0.2", 0.3, -math.Pi / 2, 0.2, 0.5, -math.Pi / 2, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := EulerXYZToMatrix(tc.a, tc.b, tc.g)
			a, b, g := MatrixToEulerXYZ(m)
			if angleDist(a, tc.wa) > 1e-9 || math.Abs(b-tc.wb) > 1e-9 || angleDist(g, tc.wg) > 1e-9 {
				t.Fatalf("MatrixToEulerXYZ = (%.12f, %.12f, %.12f), want (%.12f, %.12f, %.12f)", a, b, g, tc.wa, tc.wb, tc.wg)
			}
			s := scipyEulerXYZ(m)
			if angleDist(a, s[0]) > 1e-9 || math.Abs(b-s[1]) > 1e-9 || angleDist(g, s[2]) > 1e-9 {
				t.Fatalf("MatrixToEulerXYZ = (%.12f, %.12f, %.12f), scipy reference (%.12f, %.12f, %.12f)", a, b, g, s[0], s[1], s[2])
			}
		})
	}
}

// TestMatrixToEulerXYZScipy cross-checks against the scipy reference on random rotations, on
// rotations within 1e-9..1e-3 of gimbal lock, and checks that the angles rebuild the rotation.
func TestMatrixToEulerXYZScipy(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		a, g := rng.Float64()*2*math.Pi-math.Pi, rng.Float64()*2*math.Pi-math.Pi
		b := rng.Float64()*math.Pi - math.Pi/2
		kind := "random"
		if i%4 == 0 {
			kind = "near-gimbal"
			off := math.Pow(10, -3-6*rng.Float64())
			b = math.Copysign(math.Pi/2-off, rng.Float64()-0.5)
		}
		m := EulerXYZToMatrix(a, b, g)
		ga, gb, gg := MatrixToEulerXYZ(m)
		s := scipyEulerXYZ(m)
		// Near gimbal lock α and γ are ill-conditioned (error ~ eps/cos β): scale the tolerance.
		tol := 1e-12 / max(math.Cos(b), 1e-9) * 10
		tol = max(tol, 1e-10)
		if angleDist(ga, s[0]) > tol || math.Abs(gb-s[1]) > 1e-9 || angleDist(gg, s[2]) > tol {
			t.Fatalf("%s %d: (α,β,γ)=(%v,%v,%v): got (%.12f, %.12f, %.12f), scipy (%.12f, %.12f, %.12f), tol %.1e",
				kind, i, a, b, g, ga, gb, gg, s[0], s[1], s[2], tol)
		}
		if ga < -math.Pi || ga > math.Pi || gb < -math.Pi/2 || gb > math.Pi/2 || gg < -math.Pi || gg > math.Pi {
			t.Fatalf("%s %d: angles (%v, %v, %v) outside scipy ranges", kind, i, ga, gb, gg)
		}
		back := EulerXYZToMatrix(ga, gb, gg)
		var want [3][3]float64
		for r := range 3 {
			for c := range 3 {
				want[r][c] = m.At(r, c)
			}
		}
		// In gimbal lock γ is dropped, which moves the rotation by up to cos β·|γ| ≤ 1e-7·π.
		rebuildTol := 1e-12
		if kind == "near-gimbal" {
			rebuildTol = 1e-6
		}
		matClose(t, fmt.Sprintf("%s %d rebuild", kind, i), back, want, rebuildTol)
	}
}

// TestStatesToActions checks hand-computed deltas with the gripper pointing down (roll = ±π):
//
//	s0→s1: yaw 0 → 0.1 at roll π:         ΔR = Rz(0.1)·Rx(π)·Rx(π)ᵀ = Rz(0.1), Δeuler = (0, 0, 0.1)
//	s1→s2: roll π → −π (same rotation):   ΔR = I
//	s2→s3: roll −π → 3.1 at yaw 0.1:      ΔR = Rz(0.1)·Rx(3.1 − π)·Rz(0.1)ᵀ, a 0.0416 rad turn
//	s3→s4: roll 3.1 → −3.1 (seam):        ΔR = Rz(0.1)·Rx(2π − 6.2)·Rz(0.1)ᵀ, 0.0832 rad, not 6.2
func TestStatesToActions(t *testing.T) {
	states := []State{
		{0.5, 0.0, 0.3, math.Pi, 0, 0, 0},
		{0.52, -0.01, 0.28, math.Pi, 0, 0.1, 0.25},
		{0.52, -0.01, 0.28, -math.Pi, 0, 0.1, 0.25},
		{0.52, -0.01, 0.28, 3.1, 0, 0.1, 1},
		{0.52, -0.01, 0.28, -3.1, 0, 0.1, 1},
	}
	yawed := func(theta float64) mgl64.Mat3 {
		return mgl64.Rotate3DZ(0.1).Mul3(mgl64.Rotate3DX(theta)).Mul3(mgl64.Rotate3DZ(0.1).Transpose())
	}
	want := []struct {
		delta [3]float64
		grip  float64
		rot   mgl64.Mat3
	}{
		{[3]float64{0.02, -0.01, -0.02}, 0.25, mgl64.Rotate3DZ(0.1)},
		{[3]float64{}, 0, mgl64.Ident3()},
		{[3]float64{}, 0.75, yawed(3.1 - math.Pi)},
		{[3]float64{}, 0, yawed(2*math.Pi - 6.2)},
	}
	got := StatesToActions(states)
	if len(got) != len(want) {
		t.Fatalf("%d actions, want %d", len(got), len(want))
	}
	for i, w := range want {
		a := got[i]
		for k := range 3 {
			if math.Abs(a[k]-w.delta[k]) > 1e-12 {
				t.Fatalf("StatesToActions: a[%d][%d] = %.15f, want %.15f", i, k, a[k], w.delta[k])
			}
		}
		if math.Abs(a[6]-w.grip) > 1e-12 {
			t.Fatalf("StatesToActions: a[%d][6] = %v, want %v", i, a[6], w.grip)
		}
		var wm [3][3]float64
		for r := range 3 {
			for c := range 3 {
				wm[r][c] = w.rot.At(r, c)
			}
		}
		matClose(t, fmt.Sprintf("rotation of a[%d] = %v", i, a[3:6]), EulerXYZToMatrix(a[3], a[4], a[5]), wm, 1e-12)
	}
	if a := got[0]; math.Abs(a[3]) > 1e-12 || math.Abs(a[4]) > 1e-12 || math.Abs(a[5]-0.1) > 1e-12 {
		t.Fatalf("a[0] euler = %v, want (0, 0, 0.1)", a[3:6])
	}
	if n := RotationAngle(EulerXYZToMatrix(got[3][3], got[3][4], got[3][5])); math.Abs(n-(2*math.Pi-6.2)) > 1e-12 {
		t.Fatalf("seam crossing rotates %.6f rad, want %.6f", n, 2*math.Pi-6.2)
	}
}

// TestComputeNewPoseRoundTrip: integrating the actions from the first state gives back every state
// (spec §7.5), on random trajectories around DROID's roll ≈ ±π.
func TestComputeNewPoseRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 50 {
		states := make([]State, 8)
		s := State{0.5, 0, 0.3, math.Pi - 0.02, 0.05, 0.3, 0.2}
		for i := range states {
			states[i] = s
			s[0] += rng.NormFloat64() * 0.01
			s[1] += rng.NormFloat64() * 0.01
			s[2] += rng.NormFloat64() * 0.01
			s[3] = wrapAngle(s[3] + rng.NormFloat64()*0.05)
			s[4] += rng.NormFloat64() * 0.05
			s[5] = wrapAngle(s[5] + rng.NormFloat64()*0.2)
			s[6] = min(max(s[6]+rng.NormFloat64()*0.2, 0), 1)
		}
		actions := StatesToActions(states)
		cur := states[0]
		for i, a := range actions {
			cur = ComputeNewPose(cur, a)
			want := states[i+1]
			for k := range 3 {
				if math.Abs(cur[k]-want[k]) > 1e-12 {
					t.Fatalf("trial %d step %d: pos[%d] = %v, want %v", trial, i+1, k, cur[k], want[k])
				}
			}
			for k := 3; k < 6; k++ {
				if angleDist(cur[k], want[k]) > 1e-9 {
					t.Fatalf("trial %d step %d: angle[%d] = %.12f, want %.12f", trial, i+1, k, cur[k], want[k])
				}
			}
			if math.Abs(cur[6]-want[6]) > 1e-12 {
				t.Fatalf("trial %d step %d: gripper %v, want %v", trial, i+1, cur[6], want[6])
			}
			// Every rotation delta is small although roll crosses ±π.
			if n := RotationAngle(EulerXYZToMatrix(a[3], a[4], a[5])); n > 0.6 {
				t.Fatalf("trial %d step %d: rotation delta %.3f rad", trial, i, n)
			}
		}
	}
}

func BenchmarkStatesToActions(b *testing.B) {
	states := make([]State, 8)
	for i := range states {
		states[i] = State{0.5, 0, 0.3, 3.1, 0.01 * float64(i), 0.1 * float64(i), 0}
	}
	for b.Loop() {
		StatesToActions(states)
	}
}
