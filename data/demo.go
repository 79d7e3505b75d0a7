package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// DemoConfig sizes a synthetic dataset in the exact DROID RLDS schema (droid-rlds §1).
type DemoConfig struct {
	Name        string // TFDS dataset name, the {DATASET} of shard file names
	Episodes    int
	Steps       int // nominal T; every sixth episode is cut to 3/4 of it to exercise short episodes
	Shards      int
	Seed        uint64
	JPEGQuality int
}

// DefaultDemoConfig is the committed testdata/droid_sample: 6 episodes × 40 steps in 2 shards.
func DefaultDemoConfig() DemoConfig {
	return DemoConfig{Name: "droid_demo", Episodes: 6, Steps: 40, Shards: 2, Seed: 1, JPEGQuality: 75}
}

// Demo episode roles, by episode index mod 6, so that every filter has something to catch:
//
//	0, 3  success: pick the red cube and place it on the blue plate
//	1     success with a 12-step pause mid-way (openpi idle rule)
//	2     failure: the grasp misses by 6 cm, the cube stays, the gripper closes fully
//	4     success label, but the arm only jitters in place (motion rule)
//	5     success, cut to 3/4 length (short episode at the default 8 frames × stride 4)
type demoRole int

const (
	roleNormal demoRole = iota
	roleIdle
	roleMiss
	roleJitter
	roleShort
)

func demoRoleOf(e int) demoRole {
	switch e % 6 {
	case 1:
		return roleIdle
	case 2:
		return roleMiss
	case 4:
		return roleJitter
	case 5:
		return roleShort
	}
	return roleNormal
}

const (
	demoWidth, demoHeight = 320, 180
	demoHz                = 15
	cubeHalf              = 0.025 // metres
	fingerLen             = 0.06  // finger tips sit this far below the end-effector point
	graspZ                = 0.075 // end-effector height when the fingers straddle the cube
	sphereRadius          = 0.034
	plateRadius           = 0.07
)

// demoEpisode is one synthetic trajectory before encoding.
type demoEpisode struct {
	success  bool
	states   []State      // [T]
	cube     [][3]float64 // cube centre per step
	cubeYaw  float64
	plate    [2]float64
	filePath string
	folder   string
	lang     [3]string
}

// WriteDemoDataset writes cfg.Episodes synthetic DROID episodes as RLDS into dir: shards named
// {Name}-train.tfrecord-NNNNN-of-MMMMM, dataset_info.json and features.json. Scenes are ray-cast: a
// wooden table, a red cube, a blue plate and a gripper (a sphere whose colour goes green → blue as it
// closes, with two fingers whose gap follows the gripper state) seen by two exterior cameras and a
// wrist camera. Image positions, sizes and shadows follow the recorded end-effector poses, so a world
// model can learn the action → pixels relation.
func WriteDemoDataset(dir string, cfg DemoConfig) error {
	if cfg.Episodes < 1 || cfg.Steps < 8 || cfg.Shards < 1 || cfg.Shards > cfg.Episodes {
		return fmt.Errorf("data: demo dataset: want episodes >= 1, steps >= 8, 1 <= shards <= episodes; got %d, %d, %d",
			cfg.Episodes, cfg.Steps, cfg.Shards)
	}
	if cfg.JPEGQuality == 0 {
		cfg.JPEGQuality = 75
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data: demo dataset: %w", err)
	}
	info := &DatasetInfo{
		Name: cfg.Name, Version: "1.0.1", FileFormat: "tfrecord", ModuleName: "vjepa_vk.make_demo_data",
		Description: "Synthetic DROID-format episodes written by vjepa-vk make-demo-data: a gripper picks a red cube " +
			"and places it on a blue plate; images are rendered from the recorded end-effector poses.",
		Splits: []SplitInfo{{Name: "train", FilepathTemplate: DefaultFilepathTemplate}},
	}
	per := make([]int64, cfg.Shards)
	for e := range cfg.Episodes {
		per[e*cfg.Shards/cfg.Episodes]++
	}
	info.Splits[0].ShardLengths = per
	shards, err := info.Shards("train")
	if err != nil {
		return err
	}
	scene := newDemoRenderer()
	var total int64
	e := 0
	for _, sh := range shards {
		var buf bytes.Buffer
		w := NewRecordWriter(&buf)
		for range sh.Episodes {
			ep := makeDemoEpisode(cfg, e)
			ex, err := encodeDemoEpisode(ep, scene, cfg.JPEGQuality)
			if err != nil {
				return fmt.Errorf("data: demo episode %d: %w", e, err)
			}
			if err := w.Write(ex); err != nil {
				return err
			}
			e++
		}
		total += int64(buf.Len())
		if err := os.WriteFile(filepath.Join(dir, sh.Name), buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("data: demo dataset: %w", err)
		}
	}
	info.Splits[0].NumBytes = jsonInt64(total)
	b, err := MarshalDatasetInfo(info)
	if err != nil {
		return fmt.Errorf("data: demo dataset info: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, DatasetInfoFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("data: demo dataset: %w", err)
	}
	fb, err := json.MarshalIndent(droidFeaturesJSON(demoHeight, demoWidth), "", "  ")
	if err != nil {
		return fmt.Errorf("data: demo features.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "features.json"), append(fb, '\n'), 0o644); err != nil {
		return fmt.Errorf("data: demo dataset: %w", err)
	}
	return nil
}

// smoothstep eases a keyframe segment in and out.
func smoothstep(u float64) float64 {
	u = min(max(u, 0), 1)
	return u * u * (3 - 2*u)
}

// wrapAngle maps an angle to (−π, π].
func wrapAngle(a float64) float64 {
	a = math.Mod(a+math.Pi, 2*math.Pi)
	if a <= 0 {
		a += 2 * math.Pi
	}
	return a - math.Pi
}

type demoKey struct {
	at   float64 // fraction of the episode
	pos  [3]float64
	yaw  float64
	grip float64
}

func makeDemoEpisode(cfg DemoConfig, e int) *demoEpisode {
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(e)))
	role := demoRoleOf(e)
	T := cfg.Steps
	if role == roleShort {
		T = cfg.Steps * 3 / 4
	}
	uni := func(a, b float64) float64 { return a + (b-a)*rng.Float64() }
	ep := &demoEpisode{success: role != roleMiss}
	cube := [3]float64{uni(0.42, 0.62), uni(-0.22, 0.0), cubeHalf}
	ep.cubeYaw = uni(-0.6, 0.6)
	ep.plate = [2]float64{uni(0.42, 0.62), uni(0.12, 0.25)}
	home := [3]float64{uni(0.38, 0.46), uni(-0.05, 0.05), uni(0.28, 0.34)}
	homeYaw := uni(-0.3, 0.3)

	grasp := [2]float64{cube[0], cube[1]}
	closed := 0.62 // fingers stopped by the cube
	if role == roleMiss {
		grasp[0] += 0.06 * math.Cos(ep.cubeYaw+0.8)
		grasp[1] += 0.06 * math.Sin(ep.cubeYaw+0.8)
		closed = 1
	}
	keys := []demoKey{
		{0.00, home, homeYaw, 0},
		{0.25, [3]float64{grasp[0], grasp[1], 0.20}, ep.cubeYaw, 0},
		{0.40, [3]float64{grasp[0], grasp[1], graspZ}, ep.cubeYaw, 0},
		{0.50, [3]float64{grasp[0], grasp[1], graspZ}, ep.cubeYaw, closed},
		{0.75, [3]float64{ep.plate[0], ep.plate[1], 0.22}, ep.cubeYaw + 0.4, closed},
		{0.90, [3]float64{ep.plate[0], ep.plate[1], graspZ + 0.01}, ep.cubeYaw + 0.4, closed},
		{1.00, [3]float64{ep.plate[0], ep.plate[1], graspZ + 0.01}, ep.cubeYaw + 0.4, 0},
	}
	// eff[t] is the motion clock at step t: it stands still during the idle role's pause, so the pose,
	// the wobble and hence the joint velocities are exactly constant there.
	pauseFrom, pauseLen := T*14/40, 12
	span := float64(T - 1)
	if role == roleIdle {
		span = float64(T - 1 - pauseLen)
	}
	eff := func(t int) float64 {
		if role != roleIdle || t < pauseFrom {
			return float64(t)
		}
		return float64(max(t-pauseLen, pauseFrom))
	}
	ep.states = make([]State, T)
	ep.cube = make([][3]float64, T)
	holding := false
	for t := range T {
		var pos [3]float64
		var yaw, grip float64
		if role == roleJitter {
			pos = [3]float64{home[0] + uni(-2e-4, 2e-4), home[1] + uni(-2e-4, 2e-4), home[2] + uni(-2e-4, 2e-4)}
			yaw, grip = homeYaw+uni(-1e-3, 1e-3), 0
		} else {
			s := eff(t) / span
			k := 0
			for k+2 < len(keys) && keys[k+1].at <= s {
				k++
			}
			a, b := keys[k], keys[k+1]
			u := smoothstep((s - a.at) / (b.at - a.at))
			for i := range 3 {
				pos[i] = a.pos[i] + u*(b.pos[i]-a.pos[i])
			}
			yaw = a.yaw + u*(b.yaw-a.yaw)
			grip = a.grip + u*(b.grip-a.grip)
		}
		// Gripper pointing down: roll near ±π, so the stored roll wraps across the ±π seam as it wobbles.
		wobble := 1.0
		if role == roleJitter {
			wobble = 0
		}
		roll := wrapAngle(math.Pi + wobble*0.05*math.Sin(2*math.Pi*eff(t)/17+float64(e)))
		pitch := wobble * 0.04 * math.Cos(2*math.Pi*eff(t)/23)
		ep.states[t] = State{pos[0], pos[1], pos[2], roll, pitch, wrapAngle(yaw), grip}
		// The cube rides along once the fingers have closed on it, and is let go when they open.
		if role != roleMiss && role != roleJitter {
			if grip > 0.5 {
				holding = true
			} else if holding && grip < 0.3 {
				holding = false
				cube[2] = cubeHalf // set down on the plate
			}
		}
		if holding {
			cube = [3]float64{pos[0], pos[1], max(pos[2]-graspZ+cubeHalf, cubeHalf)}
			ep.cubeYaw = yaw
		}
		ep.cube[t] = cube
	}
	date := fmt.Sprintf("2024-03-%02d", 1+e%28)
	stamp := fmt.Sprintf("Fri_Mar__%d_%02d:%02d:%02d_2024", 1+e%28, 9+e%8, (7*e)%60, (13*e)%60)
	outcome := "success"
	if !ep.success {
		outcome = "failure"
	}
	ep.folder = fmt.Sprintf("gs://demo/droid_raw/1.0.1/DEMO/%s/%s/%s/recordings/MP4", outcome, date, stamp)
	ep.filePath = fmt.Sprintf("gs://demo/droid_raw/1.0.1/DEMO/%s/%s/%s/trajectory.h5", outcome, date, stamp)
	ep.lang = [3]string{"put the red cube on the blue plate", "pick up the red block and place it on the plate", ""}
	return ep
}

// demoJoints is a smooth stand-in for inverse kinematics: plausible Franka-like joint angles that vary
// with the pose, so joint velocities move when the arm does and are exactly zero when it holds still.
func demoJoints(s State) [7]float64 {
	r := math.Hypot(s[0], s[1])
	q0 := math.Atan2(s[1], s[0])
	return [7]float64{
		q0,
		0.3 + 1.5*(r-0.5) - 0.8*(s[2]-0.3),
		0.1 * math.Sin(s[5]),
		-2.0 + 1.2*(r-0.5) + 1.5*(s[2]-0.3),
		0.5 * math.Sin(s[3]),
		1.9 + 0.5*(s[2]-0.3) - 0.3*(r-0.5) + s[4],
		s[5] - q0 + math.Pi/4,
	}
}

func clip1(v float64) float64 { return min(max(v, -1), 1) }

func encodeDemoEpisode(ep *demoEpisode, scene *demoRenderer, quality int) ([]byte, error) {
	T := len(ep.states)
	f32 := func(n int) []float32 { return make([]float32, 0, n) }
	var (
		isFirst, isLast                            = make([]int64, T), make([]int64, T)
		reward, discount                           = f32(T), f32(T)
		action, actCart, actCartVel                = f32(7 * T), f32(6 * T), f32(6 * T)
		actGrip, actGripVel, actJoint, actJointVel = f32(T), f32(T), f32(7 * T), f32(7 * T)
		obsCart, obsGrip, obsJoint                 = f32(6 * T), f32(T), f32(7 * T)
		lang1, lang2, lang3, ext1, ext2, wrist     [][]byte
		cameraBuf                                  bytes.Buffer
	)
	joints := make([][7]float64, T)
	for t := range T {
		joints[t] = demoJoints(ep.states[t])
	}
	actions := StatesToActions(ep.states)
	for t := range T {
		s := ep.states[t]
		next := s
		if t+1 < T {
			next = ep.states[t+1]
		}
		isFirst[t] = b2i(t == 0)
		isLast[t] = b2i(t == T-1)
		r := float32(0)
		if ep.success && t == T-1 {
			r = 1
		}
		reward = append(reward, r)
		discount = append(discount, 1)
		for i := range 6 {
			obsCart = append(obsCart, float32(s[i]))
			actCart = append(actCart, float32(next[i]))
			action = append(action, float32(next[i]))
		}
		action = append(action, float32(next[6]))
		obsGrip = append(obsGrip, float32(s[6]))
		actGrip = append(actGrip, float32(next[6]))
		var vel [7]float64
		if t+1 < T {
			a := actions[t]
			for i := range 6 {
				vel[i] = clip1(a[i] * demoHz)
			}
			vel[6] = clip1(a[6] * demoHz)
		}
		for i := range 6 {
			actCartVel = append(actCartVel, float32(vel[i]))
		}
		actGripVel = append(actGripVel, float32(vel[6]))
		for j := range 7 {
			obsJoint = append(obsJoint, float32(joints[t][j]))
			nj := joints[t]
			if t+1 < T {
				nj = joints[t+1]
			}
			actJoint = append(actJoint, float32(nj[j]))
			actJointVel = append(actJointVel, float32(clip1((nj[j]-joints[t][j])*demoHz)))
		}
		lang1 = append(lang1, []byte(ep.lang[0]))
		lang2 = append(lang2, []byte(ep.lang[1]))
		lang3 = append(lang3, []byte(ep.lang[2]))
		for cam, dst := range []*[][]byte{&ext1, &ext2, &wrist} {
			img := scene.render(cam, ep, t)
			cameraBuf.Reset()
			if err := jpeg.Encode(&cameraBuf, img, &jpeg.Options{Quality: quality}); err != nil {
				return nil, fmt.Errorf("encode jpeg: %w", err)
			}
			*dst = append(*dst, bytes.Clone(cameraBuf.Bytes()))
		}
	}
	return MarshalExample(map[string]FeatureValue{
		KeyFilePath:          StringFeature(ep.filePath),
		KeyRecordingFolder:   StringFeature(ep.folder),
		KeyIsFirst:           Int64Feature(isFirst...),
		KeyIsLast:            Int64Feature(isLast...),
		KeyIsTerminal:        Int64Feature(isLast...),
		KeyReward:            FloatFeature(reward...),
		KeyDiscount:          FloatFeature(discount...),
		KeyLanguage1:         BytesFeature(lang1...),
		KeyLanguage2:         BytesFeature(lang2...),
		KeyLanguage3:         BytesFeature(lang3...),
		KeyAction:            FloatFeature(action...),
		KeyActCartesianPos:   FloatFeature(actCart...),
		KeyActCartesianVel:   FloatFeature(actCartVel...),
		KeyActGripperPos:     FloatFeature(actGrip...),
		KeyActGripperVel:     FloatFeature(actGripVel...),
		KeyActJointPos:       FloatFeature(actJoint...),
		KeyActJointVel:       FloatFeature(actJointVel...),
		KeyObsCartesianPos:   FloatFeature(obsCart...),
		KeyObsGripperPos:     FloatFeature(obsGrip...),
		KeyObsJointPos:       FloatFeature(obsJoint...),
		KeyObsExteriorImage1: BytesFeature(ext1...),
		KeyObsExteriorImage2: BytesFeature(ext2...),
		KeyObsWristImage:     BytesFeature(wrist...),
	}), nil
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// --- rendering -----------------------------------------------------------------------------------

type vec3 = [3]float64

func add(a, b vec3) vec3           { return vec3{a[0] + b[0], a[1] + b[1], a[2] + b[2]} }
func sub(a, b vec3) vec3           { return vec3{a[0] - b[0], a[1] - b[1], a[2] - b[2]} }
func scale(a vec3, s float64) vec3 { return vec3{a[0] * s, a[1] * s, a[2] * s} }
func dot(a, b vec3) float64        { return a[0]*b[0] + a[1]*b[1] + a[2]*b[2] }
func cross(a, b vec3) vec3 {
	return vec3{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}
func normalize(a vec3) vec3          { return scale(a, 1/math.Sqrt(dot(a, a))) }
func rotZ(a vec3, c, s float64) vec3 { return vec3{c*a[0] - s*a[1], s*a[0] + c*a[1], a[2]} }

// demoCamera is a pinhole camera: eye, and the world directions of image right, down and forward.
type demoCamera struct {
	eye                  vec3
	right, down, forward vec3
	focal                float64
}

func lookAt(eye, target vec3, focal float64) demoCamera {
	f := normalize(sub(target, eye))
	r := normalize(cross(f, vec3{0, 0, 1}))
	d := cross(f, r)
	return demoCamera{eye: eye, right: r, down: d, forward: f, focal: focal}
}

func (c demoCamera) ray(px, py float64) vec3 {
	x := (px - demoWidth/2) / c.focal
	y := (py - demoHeight/2) / c.focal
	return normalize(add(c.forward, add(scale(c.right, x), scale(c.down, y))))
}

type demoRenderer struct {
	exterior [2]demoCamera
	light    vec3
	img      *image.RGBA
}

func newDemoRenderer() *demoRenderer {
	return &demoRenderer{
		exterior: [2]demoCamera{
			lookAt(vec3{1.0, 0.36, 0.48}, vec3{0.52, -0.02, 0.12}, 250),
			lookAt(vec3{1.0, -0.4, 0.52}, vec3{0.52, 0.03, 0.12}, 250),
		},
		light: normalize(vec3{0.3, 0.25, 1}),
		img:   image.NewRGBA(image.Rect(0, 0, demoWidth, demoHeight)),
	}
}

// hit is the nearest surface along a ray.
type hit struct {
	t      float64
	normal vec3
	albedo vec3
	table  bool
}

// sceneAt is the geometry at one step.
type sceneAt struct {
	ee         vec3
	yawC, yawS float64 // gripper yaw
	fingerGap  float64
	grip       float64
	cube       vec3
	cubeC      float64
	cubeS      float64
	plate      [2]float64
	drawSphere bool
}

func (r *demoRenderer) render(cam int, ep *demoEpisode, t int) *image.RGBA {
	s := ep.states[t]
	sc := sceneAt{
		ee: vec3{s[0], s[1], s[2]}, yawC: math.Cos(s[5]), yawS: math.Sin(s[5]),
		fingerGap: 0.012 + 0.045*(1-s[6]), grip: s[6],
		cube: ep.cube[t], plate: ep.plate, drawSphere: cam != 2,
	}
	sc.cubeC, sc.cubeS = math.Cos(ep.cubeYaw), math.Sin(ep.cubeYaw)
	var c demoCamera
	if cam < 2 {
		c = r.exterior[cam]
	} else {
		// Wrist camera: just above and behind the gripper, looking down and slightly forward along
		// the gripper's x axis, so the fingers sit at the bottom of the view.
		fwd := rotZ(vec3{1, 0, 0}, sc.yawC, sc.yawS)
		eye := add(sc.ee, add(scale(fwd, -0.05), vec3{0, 0, 0.07}))
		c = lookAt(eye, add(sc.ee, add(scale(fwd, 0.12), vec3{0, 0, -0.2})), 150)
	}
	for py := range demoHeight {
		for px := range demoWidth {
			dir := c.ray(float64(px)+0.5, float64(py)+0.5)
			r.img.SetRGBA(px, py, r.shade(sc, c.eye, dir))
		}
	}
	return r.img
}

func (r *demoRenderer) shade(sc sceneAt, eye, dir vec3) color.RGBA {
	h, ok := r.trace(sc, eye, dir)
	if !ok {
		// Background: a wall that darkens towards the top.
		v := 0.55 + 0.25*dir[2]
		return rgb(vec3{v, v * 0.97, v * 0.92})
	}
	p := add(eye, scale(dir, h.t))
	light := 0.35 + 0.65*max(dot(h.normal, r.light), 0)
	if h.table {
		// Soft contact shadows make height readable: the closer an object to the table, the darker
		// and tighter its shadow.
		if _, blocked := r.trace(sc, add(p, scale(r.light, 1e-4)), r.light); blocked {
			light *= 0.55
		}
	}
	return rgb(scale(h.albedo, light))
}

func rgb(c vec3) color.RGBA {
	q := func(v float64) uint8 { return uint8(min(max(v*255, 0), 255)) }
	return color.RGBA{q(c[0]), q(c[1]), q(c[2]), 255}
}

// trace intersects the ray with the table, plate, cube, gripper sphere and fingers.
func (r *demoRenderer) trace(sc sceneAt, o, d vec3) (hit, bool) {
	best := hit{t: math.Inf(1)}
	found := false
	consider := func(h hit, ok bool) {
		if ok && h.t > 1e-6 && h.t < best.t {
			best, found = h, true
		}
	}
	// Table top z = 0 over x ∈ [0.15, 0.95], y ∈ [−0.5, 0.5].
	if d[2] < 0 {
		t := -o[2] / d[2]
		p := add(o, scale(d, t))
		if p[0] > 0.15 && p[0] < 0.95 && p[1] > -0.5 && p[1] < 0.5 {
			consider(hit{t: t, normal: vec3{0, 0, 1}, albedo: tableAlbedo(p, sc), table: true}, true)
		}
	}
	// Cube, in its own frame.
	consider(boxHit(o, d, sc.cube, sc.cubeC, sc.cubeS, vec3{cubeHalf, cubeHalf, cubeHalf}, vec3{0.85, 0.12, 0.1}))
	// Gripper: a sphere at the end-effector and two fingers along its y axis.
	if sc.drawSphere {
		consider(sphereHit(o, d, sc.ee, sphereRadius, vec3{0.15 + 0.1*sc.grip, 0.75 - 0.5*sc.grip, 0.25 + 0.6*sc.grip}))
	}
	for _, side := range []float64{-1, 1} {
		off := rotZ(vec3{0, side * (sc.fingerGap/2 + 0.006), 0}, sc.yawC, sc.yawS)
		centre := add(sc.ee, add(off, vec3{0, 0, -fingerLen / 2}))
		consider(boxHit(o, d, centre, sc.yawC, sc.yawS, vec3{0.014, 0.008, fingerLen / 2}, vec3{0.2, 0.2, 0.22}))
	}
	return best, found
}

func tableAlbedo(p vec3, sc sceneAt) vec3 {
	if math.Hypot(p[0]-sc.plate[0], p[1]-sc.plate[1]) < plateRadius {
		return vec3{0.15, 0.3, 0.8}
	}
	// Low-frequency wood grain: cheap to compress, yet enough texture to see the camera move.
	g := 0.5 + 0.5*math.Sin(40*p[0]+6*math.Sin(9*p[1]))
	planks := 0.9 + 0.1*math.Cos(2*math.Pi*p[1]/0.2)
	return scale(vec3{0.62 + 0.1*g, 0.45 + 0.08*g, 0.28 + 0.05*g}, planks)
}

func sphereHit(o, d, c vec3, radius float64, albedo vec3) (hit, bool) {
	oc := sub(o, c)
	b := dot(oc, d)
	disc := b*b - (dot(oc, oc) - radius*radius)
	if disc < 0 {
		return hit{}, false
	}
	t := -b - math.Sqrt(disc)
	if t < 0 {
		return hit{}, false
	}
	return hit{t: t, normal: normalize(sub(add(o, scale(d, t)), c)), albedo: albedo}, true
}

// boxHit intersects a box with centre c, half sizes h, rotated by yaw (cos, sin) about z.
func boxHit(o, d, c vec3, cs, sn float64, h, albedo vec3) (hit, bool) {
	// Reject rays that miss the bounding sphere before the slab test.
	oc := sub(c, o)
	b := dot(oc, d)
	if dot(oc, oc)-b*b > dot(h, h) {
		return hit{}, false
	}
	lo := rotZ(sub(o, c), cs, -sn)
	ld := rotZ(d, cs, -sn)
	tmin, tmax := math.Inf(-1), math.Inf(1)
	axis, sign := -1, 0.0
	for i := range 3 {
		if math.Abs(ld[i]) < 1e-12 {
			if lo[i] < -h[i] || lo[i] > h[i] {
				return hit{}, false
			}
			continue
		}
		t1, t2 := (-h[i]-lo[i])/ld[i], (h[i]-lo[i])/ld[i]
		s := -1.0
		if t1 > t2 {
			t1, t2 = t2, t1
			s = 1
		}
		if t1 > tmin {
			tmin, axis, sign = t1, i, s
		}
		tmax = min(tmax, t2)
		if tmin > tmax {
			return hit{}, false
		}
	}
	if axis < 0 || tmin < 0 {
		return hit{}, false
	}
	var n vec3
	n[axis] = sign
	return hit{t: tmin, normal: rotZ(n, cs, sn), albedo: albedo}, true
}

// droidFeaturesJSON is features.json for the DROID schema in TFDS's FeaturesDict JSON form
// (droid-rlds §1).
func droidFeaturesJSON(h, w int) map[string]any {
	const pkg = "tensorflow_datasets.core.features."
	dims := func(d ...int) map[string]any {
		if len(d) == 0 {
			return map[string]any{}
		}
		s := make([]string, len(d))
		for i, v := range d {
			s[i] = fmt.Sprint(v)
		}
		return map[string]any{"dimensions": s}
	}
	tensor := func(desc, dtype string, d ...int) map[string]any {
		return map[string]any{"pythonClassName": pkg + "tensor_feature.Tensor",
			"tensor": map[string]any{"shape": dims(d...), "dtype": dtype, "encoding": "none"}, "description": desc}
	}
	scalar := func(desc, dtype string) map[string]any {
		return map[string]any{"pythonClassName": pkg + "scalar.Scalar",
			"tensor": map[string]any{"shape": dims(), "dtype": dtype, "encoding": "none"}, "description": desc}
	}
	img := func(desc string) map[string]any {
		return map[string]any{"pythonClassName": pkg + "image_feature.Image",
			"image": map[string]any{"shape": dims(h, w, 3), "dtype": "uint8", "encodingFormat": "jpeg"}, "description": desc}
	}
	text := func(desc string) map[string]any {
		return map[string]any{"pythonClassName": pkg + "text_feature.Text", "text": map[string]any{}, "description": desc}
	}
	dict := func(f map[string]any) map[string]any {
		return map[string]any{"pythonClassName": pkg + "features_dict.FeaturesDict",
			"featuresDict": map[string]any{"features": f}}
	}
	step := dict(map[string]any{
		"is_first":               scalar("True on first step of the episode.", "bool"),
		"is_last":                scalar("True on last step of the episode.", "bool"),
		"is_terminal":            scalar("True on last step of the episode if it is a terminal step, True for demos.", "bool"),
		"reward":                 scalar("Reward if provided, 1 on final step for demos.", "float32"),
		"discount":               scalar("Discount if provided, default to 1.", "float32"),
		"language_instruction":   text("Language Instruction."),
		"language_instruction_2": text("Alternative Language Instruction."),
		"language_instruction_3": text("Alternative Language Instruction."),
		"action":                 tensor("Robot action, consists of [6x joint velocities, 1x gripper position].", "float64", 7),
		"action_dict": dict(map[string]any{
			"cartesian_position": tensor("Commanded Cartesian position", "float64", 6),
			"cartesian_velocity": tensor("Commanded Cartesian velocity", "float64", 6),
			"gripper_position":   tensor("Commanded gripper position", "float64", 1),
			"gripper_velocity":   tensor("Commanded gripper velocity", "float64", 1),
			"joint_position":     tensor("Commanded joint position", "float64", 7),
			"joint_velocity":     tensor("Commanded joint velocity", "float64", 7),
		}),
		"observation": dict(map[string]any{
			"cartesian_position":    tensor("Robot Cartesian state", "float64", 6),
			"gripper_position":      tensor("Gripper position state", "float64", 1),
			"joint_position":        tensor("Joint position state", "float64", 7),
			"exterior_image_1_left": img("Exterior camera 1 left viewpoint"),
			"exterior_image_2_left": img("Exterior camera 2 left viewpoint"),
			"wrist_image_left":      img("Wrist camera RGB left viewpoint"),
		}),
	})
	return dict(map[string]any{
		"steps": map[string]any{"pythonClassName": pkg + "dataset_feature.Dataset",
			"sequence": map[string]any{"feature": step, "length": "-1"}},
		"episode_metadata": dict(map[string]any{
			"file_path":            text("Path to the original data file."),
			"recording_folderpath": text("Path to the folder of recordings."),
		}),
	})
}

// DemoTrajectory is one episode of the demo scene, for writers of other formats (data/lerobot): the same
// poses and pictures WriteDemoDataset stores as RLDS.
type DemoTrajectory struct{ ep *demoEpisode }

// NewDemoTrajectory returns episode e of the demo dataset cfg describes (cfg.Steps and cfg.Seed matter).
func NewDemoTrajectory(cfg DemoConfig, e int) DemoTrajectory {
	return DemoTrajectory{makeDemoEpisode(cfg, e)}
}

// States are the end-effector poses and gripper per step (spec §7.4).
func (d DemoTrajectory) States() []State { return d.ep.states }

// Joints are the stand-in joint angles of step t.
func (d DemoTrajectory) Joints(t int) [7]float64 { return demoJoints(d.ep.states[t]) }

// Success reports whether the episode succeeds.
func (d DemoTrajectory) Success() bool { return d.ep.success }

// Instruction is the episode's language instruction.
func (d DemoTrajectory) Instruction() string { return d.ep.lang[0] }

// DemoRenderer draws frames of demo trajectories; it keeps one image buffer, so each goroutine needs its
// own.
type DemoRenderer struct{ r *demoRenderer }

// NewDemoRenderer returns a renderer of DemoFrameWidth×DemoFrameHeight frames.
func NewDemoRenderer() DemoRenderer { return DemoRenderer{newDemoRenderer()} }

// Demo frame size.
const (
	DemoFrameWidth  = demoWidth
	DemoFrameHeight = demoHeight
	DemoFPS         = demoHz
)

// Render draws step t of d from camera cam (0, 1: exterior; 2: wrist). The image is reused by the next
// call.
func (r DemoRenderer) Render(cam int, d DemoTrajectory, t int) *image.RGBA {
	return r.r.render(cam, d.ep, t)
}
