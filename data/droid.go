package data

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Keys of the DROID RLDS schema (droid-rlds §1): per-step leaves are stacked over the T steps of the
// episode and flattened into one Feature.
const (
	KeyFilePath          = "episode_metadata/file_path"
	KeyRecordingFolder   = "episode_metadata/recording_folderpath"
	KeyIsFirst           = "steps/is_first"
	KeyIsLast            = "steps/is_last"
	KeyIsTerminal        = "steps/is_terminal"
	KeyReward            = "steps/reward"
	KeyDiscount          = "steps/discount"
	KeyLanguage1         = "steps/language_instruction"
	KeyLanguage2         = "steps/language_instruction_2"
	KeyLanguage3         = "steps/language_instruction_3"
	KeyAction            = "steps/action"
	KeyActCartesianPos   = "steps/action_dict/cartesian_position"
	KeyActCartesianVel   = "steps/action_dict/cartesian_velocity"
	KeyActGripperPos     = "steps/action_dict/gripper_position"
	KeyActGripperVel     = "steps/action_dict/gripper_velocity"
	KeyActJointPos       = "steps/action_dict/joint_position"
	KeyActJointVel       = "steps/action_dict/joint_velocity"
	KeyObsCartesianPos   = "steps/observation/cartesian_position"
	KeyObsGripperPos     = "steps/observation/gripper_position"
	KeyObsJointPos       = "steps/observation/joint_position"
	KeyObsExteriorImage1 = "steps/observation/exterior_image_1_left"
	KeyObsExteriorImage2 = "steps/observation/exterior_image_2_left"
	KeyObsWristImage     = "steps/observation/wrist_image_left"
)

// Camera names accepted by ClipConfig.Camera.
const (
	CameraExterior1      = "exterior_image_1_left"
	CameraExterior2      = "exterior_image_2_left"
	CameraWrist          = "wrist_image_left"
	CameraRandomExterior = "random_exterior" // one of the two exterior cameras, drawn per sample
)

// Episode is one DROID episode (one tf.train.Example); its arrays are decoded on demand.
type Episode struct {
	Example         *Example
	Steps           int // T
	FilePath        string
	RecordingFolder string
}

// NewEpisode reads the episode length and metadata. T is the length of steps/is_first, or, for
// writers that omit it, of steps/observation/cartesian_position divided by 6.
func NewEpisode(ex *Example) (*Episode, error) {
	ep := &Episode{Example: ex}
	if f, ok := ex.Feature(KeyIsFirst); ok {
		n, err := f.Len()
		if err != nil {
			return nil, fmt.Errorf("data: episode: %s: %w", KeyIsFirst, err)
		}
		ep.Steps = n
	} else {
		f, ok := ex.Feature(KeyObsCartesianPos)
		if !ok {
			return nil, fmt.Errorf("data: episode: missing %s and %s", KeyIsFirst, KeyObsCartesianPos)
		}
		n, err := f.Len()
		if err != nil {
			return nil, fmt.Errorf("data: episode: %s: %w", KeyObsCartesianPos, err)
		}
		if n%6 != 0 {
			return nil, fmt.Errorf("data: episode: %s has %d values, want a multiple of 6", KeyObsCartesianPos, n)
		}
		ep.Steps = n / 6
	}
	var err error
	if ep.FilePath, err = ep.optionalString(KeyFilePath); err != nil {
		return nil, err
	}
	if ep.RecordingFolder, err = ep.optionalString(KeyRecordingFolder); err != nil {
		return nil, err
	}
	return ep, nil
}

func (ep *Episode) optionalString(key string) (string, error) {
	f, ok := ep.Example.Feature(key)
	if !ok {
		return "", nil
	}
	v, err := f.Bytes()
	if err != nil {
		return "", fmt.Errorf("data: episode: %s: %w", key, err)
	}
	if len(v) == 0 {
		return "", nil
	}
	return string(v[0]), nil
}

// Success reports whether the episode was recorded as a success; like openpi and droid_policy_learning
// it looks for "success" in episode_metadata/file_path (droid-rlds §1).
func (ep *Episode) Success() bool { return strings.Contains(ep.FilePath, "success") }

// floats reads a per-step float feature of width values per step, widened to float64.
func (ep *Episode) floats(key string, width int) ([]float64, error) {
	f, ok := ep.Example.Feature(key)
	if !ok {
		return nil, fmt.Errorf("data: episode %s: missing %s", ep.FilePath, key)
	}
	v, err := f.Floats()
	if err != nil {
		return nil, fmt.Errorf("data: episode %s: %s: %w", ep.FilePath, key, err)
	}
	if len(v) != width*ep.Steps {
		return nil, fmt.Errorf("data: episode %s: %s has %d values, want %d×%d", ep.FilePath, key, len(v), ep.Steps, width)
	}
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out, nil
}

// States returns all T states (spec §7.4): observation/cartesian_position [T,6] concatenated with
// observation/gripper_position [T], float32 on disk widened to float64.
func (ep *Episode) States() ([]State, error) {
	pose, err := ep.floats(KeyObsCartesianPos, 6)
	if err != nil {
		return nil, err
	}
	grip, err := ep.floats(KeyObsGripperPos, 1)
	if err != nil {
		return nil, err
	}
	states := make([]State, ep.Steps)
	for t := range states {
		copy(states[t][:6], pose[6*t:6*t+6])
		states[t][6] = grip[t]
	}
	return states, nil
}

// JointVelocities returns action_dict/joint_velocity as [T][7].
func (ep *Episode) JointVelocities() ([][7]float64, error) {
	v, err := ep.floats(KeyActJointVel, 7)
	if err != nil {
		return nil, err
	}
	out := make([][7]float64, ep.Steps)
	for t := range out {
		copy(out[t][:], v[7*t:7*t+7])
	}
	return out, nil
}

// Frame returns the encoded JPEG of camera at step t, a view into the record.
func (ep *Episode) Frame(camera string, t int) ([]byte, error) {
	key := "steps/observation/" + camera
	f, ok := ep.Example.Feature(key)
	if !ok {
		return nil, fmt.Errorf("data: episode %s: missing %s", ep.FilePath, key)
	}
	b, err := f.BytesAt(t)
	if err != nil {
		return nil, fmt.Errorf("data: episode %s: %s: %w", ep.FilePath, key, err)
	}
	return b, nil
}

// ClipConfig says how a clip is cut from an episode (spec §7.2–7.3).
type ClipConfig struct {
	Frames    int     `yaml:"frames"`     // frames per clip, 8
	FPS       float64 `yaml:"fps"`        // target rate, 4
	SourceFPS float64 `yaml:"source_fps"` // DROID records at 15 Hz
	Camera    string  `yaml:"camera"`     // a camera name or CameraRandomExterior
	Start     int     `yaml:"start"`      // fixed first step, or −1 for a uniformly random start
}

// DefaultClipConfig is the official droid-256px-8f setting on RLDS: 8 frames at stride ceil(15/4) = 4.
func DefaultClipConfig() ClipConfig {
	return ClipConfig{Frames: 8, FPS: 4, SourceFPS: 15, Camera: CameraExterior1, Start: -1}
}

// Validate checks the configuration for RLDS: the window and a DROID camera name.
func (c ClipConfig) Validate() error {
	if err := c.ValidateWindow(); err != nil {
		return err
	}
	switch c.Camera {
	case CameraExterior1, CameraExterior2, CameraWrist, CameraRandomExterior:
	default:
		return fmt.Errorf("clip.camera: unknown camera %q, want %s, %s, %s or %s", c.Camera,
			CameraExterior1, CameraExterior2, CameraWrist, CameraRandomExterior)
	}
	return nil
}

// ValidateWindow checks the numbers of the configuration; each Format checks the camera (Format.CheckClip).
func (c ClipConfig) ValidateWindow() error {
	switch {
	case c.Frames < 2:
		return fmt.Errorf("clip.frames: must be >= 2, got %d", c.Frames)
	case !(c.FPS > 0):
		return fmt.Errorf("clip.fps: must be > 0, got %v", c.FPS)
	case !(c.SourceFPS > 0):
		return fmt.Errorf("clip.source_fps: must be > 0, got %v", c.SourceFPS)
	case c.Start < -1:
		return fmt.Errorf("clip.start: must be >= 0 or -1 (random), got %d", c.Start)
	}
	return nil
}

// Stride is fstp = ceil(source_fps / fps) (spec §7.3); 4 for DROID.
func (c ClipConfig) Stride() int {
	// The small tolerance keeps 15/5 = 3.0000000000000004-style quotients from rounding up.
	return int(math.Ceil(c.SourceFPS/c.FPS - 1e-9))
}

// Window is nframes = frames · stride, the span V-JEPA reserves for one clip (spec §7.3).
func (c ClipConfig) Window() int { return c.Frames * c.Stride() }

// Indices returns the step indices of the clip starting at start.
func (c ClipConfig) Indices(start int) []int {
	idx := make([]int, c.Frames)
	for k := range idx {
		idx[k] = start + k*c.Stride()
	}
	return idx
}

// MaxStart is the last valid start of an episode of T steps, or −1 when it is too short. V-JEPA draws
// ef uniformly from [nframes, T−1] and starts at sf = ef − nframes, so it needs T > nframes and
// sf ∈ [0, T−1−nframes] (spec §7.3).
func (c ClipConfig) MaxStart(steps int) int {
	if steps <= c.Window() {
		return -1
	}
	return steps - 1 - c.Window()
}

// SkipReason says why an episode gave no clip.
type SkipReason string

const (
	SkipShort   SkipReason = "short"   // T <= nframes, or the fixed start is past the last valid start
	SkipFailure SkipReason = "failure" // success-only filter
	SkipIdle    SkipReason = "idle"    // no clip window inside a non-idle range (openpi rule)
	SkipStatic  SkipReason = "static"  // the sampled states barely move (motion rule)
)

// SkipError is returned by MakeClip for an episode that yields no clip; it is counted, not fatal.
type SkipError struct {
	Reason SkipReason
	Detail string
}

func (e *SkipError) Error() string {
	return fmt.Sprintf("data: skip episode: %s: %s", e.Reason, e.Detail)
}

// SkipReasonOf returns the reason of a *SkipError in err's chain, or "" when err is not a skip.
func SkipReasonOf(err error) SkipReason {
	var s *SkipError
	if errors.As(err, &s) {
		return s.Reason
	}
	return ""
}

// IdleFilterConfig is openpi's idle rule (droid-rlds §4, compute_droid_nonidle_ranges.py): step t > 0
// is idle when every |joint_velocity[t][j] − joint_velocity[t−1][j]| < Delta; idle runs of at least
// MinIdleLen steps are removed; of the rest, runs shorter than MinNonIdleLen are removed; the last
// TrimEnd steps of each kept range are dropped. A clip is kept when all its indices lie in one range.
type IdleFilterConfig struct {
	Enabled       bool    `yaml:"enabled"`
	Delta         float64 `yaml:"delta"`            // 1e-3
	MinIdleLen    int     `yaml:"min_idle_len"`     // 7
	MinNonIdleLen int     `yaml:"min_non_idle_len"` // 16
	TrimEnd       int     `yaml:"trim_end"`         // 10 (filter_last_n_in_ranges)
}

// MotionFilterConfig drops clips whose sampled states barely move: the clip is static when the summed
// translation, summed rotation angle and summed |Δgripper| over its T−1 steps are all below their
// thresholds. DROID has long pauses that teach a world model nothing.
type MotionFilterConfig struct {
	Enabled        bool    `yaml:"enabled"`
	MinTranslation float64 `yaml:"min_translation"` // metres, e.g. 0.01
	MinRotation    float64 `yaml:"min_rotation"`    // radians, e.g. 0.05
	MinGripper     float64 `yaml:"min_gripper"`     // e.g. 0.05
}

// FilterConfig gathers the episode and clip filters. All are off by default: the official V-JEPA 2-AC
// recipe filters nothing (spec §7.3).
type FilterConfig struct {
	SuccessOnly bool               `yaml:"success_only"`
	Idle        IdleFilterConfig   `yaml:"idle"`
	Motion      MotionFilterConfig `yaml:"motion"`
}

// DefaultFilterConfig returns the filters off, with openpi's idle thresholds and a 1 cm / 0.05 rad /
// 0.05 gripper motion rule filled in for when they are switched on.
func DefaultFilterConfig() FilterConfig {
	return FilterConfig{
		Idle:   IdleFilterConfig{Delta: 1e-3, MinIdleLen: 7, MinNonIdleLen: 16, TrimEnd: 10},
		Motion: MotionFilterConfig{MinTranslation: 0.01, MinRotation: 0.05, MinGripper: 0.05},
	}
}

// NonIdleRanges returns the kept [start, end) ranges of openpi's idle rule, after trimming.
func NonIdleRanges(jointVel [][7]float64, cfg IdleFilterConfig) [][2]int {
	n := len(jointVel)
	idle := make([]bool, n)
	for t := 1; t < n; t++ {
		idle[t] = true
		for j := range 7 {
			if !(math.Abs(jointVel[t][j]-jointVel[t-1][j]) < cfg.Delta) {
				idle[t] = false
				break
			}
		}
	}
	keep := make([]bool, n)
	for i := range keep {
		keep[i] = true
	}
	for _, r := range runs(idle) {
		if r[1]-r[0] >= cfg.MinIdleLen {
			for t := r[0]; t < r[1]; t++ {
				keep[t] = false
			}
		}
	}
	var out [][2]int
	for _, r := range runs(keep) {
		if r[1]-r[0] < cfg.MinNonIdleLen {
			continue
		}
		if end := r[1] - cfg.TrimEnd; end > r[0] {
			out = append(out, [2]int{r[0], end})
		}
	}
	return out
}

// runs returns the [start, end) runs of true values.
func runs(mask []bool) [][2]int {
	var out [][2]int
	for i := 0; i < len(mask); {
		if !mask[i] {
			i++
			continue
		}
		j := i
		for j < len(mask) && mask[j] {
			j++
		}
		out = append(out, [2]int{i, j})
		i = j
	}
	return out
}

// Clip is one training sample before pixels are decoded.
type Clip struct {
	Camera     string
	Start      int         // first step, Indices[0]
	Indices    []int       // [T] step indices
	States     [][]float64 // [T][S]: 7-D State rows on RLDS (spec §7.4)
	Actions    [][]float64 // [T−1][A]: 7-D Action rows on RLDS (spec §7.5)
	Extrinsics [][6]float64
	Frames     [][]byte  // [T] encoded images (JPEG views into the record on RLDS); nil for video frames
	Times      []float64 // [T] seconds from the episode's start, where the format has timestamps
}

// StateRows returns states as [T][7] rows.
func StateRows(states []State) [][]float64 {
	out := make([][]float64, len(states))
	for i := range states {
		out[i] = states[i][:]
	}
	return out
}

// ActionRows returns actions as [T−1][7] rows.
func ActionRows(actions []Action) [][]float64 {
	out := make([][]float64, len(actions))
	for i := range actions {
		out[i] = actions[i][:]
	}
	return out
}

// MakeClip cuts one clip from ep (spec §7.3–7.5): picks the camera, the start (cfg.Start, or uniform
// over the valid starts using rng), gathers the states and actions, and applies the filters. An episode
// that yields no clip returns a *SkipError. Extrinsics are zeros: RLDS has none and the official config
// does not use them (spec §7.6).
func MakeClip(ep *Episode, cfg ClipConfig, filters FilterConfig, rng *rand.Rand) (*Clip, error) {
	if filters.SuccessOnly && !ep.Success() {
		return nil, &SkipError{Reason: SkipFailure, Detail: fmt.Sprintf("file_path %q has no \"success\"", ep.FilePath)}
	}
	maxStart := cfg.MaxStart(ep.Steps)
	if maxStart < 0 {
		return nil, &SkipError{Reason: SkipShort, Detail: fmt.Sprintf("%d steps, need more than %d", ep.Steps, cfg.Window())}
	}
	if cfg.Start > maxStart {
		return nil, &SkipError{Reason: SkipShort, Detail: fmt.Sprintf("start %d past last valid start %d of %d steps", cfg.Start, maxStart, ep.Steps)}
	}
	lastOffset := (cfg.Frames - 1) * cfg.Stride()
	var ranges [][2]int
	if filters.Idle.Enabled {
		jv, err := ep.JointVelocities()
		if err != nil {
			return nil, err
		}
		ranges = NonIdleRanges(jv, filters.Idle)
	}
	startOK := func(s int) bool {
		if !filters.Idle.Enabled {
			return true
		}
		for _, r := range ranges {
			if s >= r[0] && s+lastOffset < r[1] {
				return true
			}
		}
		return false
	}
	start := cfg.Start
	if start < 0 {
		var valid []int
		for s := 0; s <= maxStart; s++ {
			if startOK(s) {
				valid = append(valid, s)
			}
		}
		if len(valid) == 0 {
			return nil, &SkipError{Reason: SkipIdle, Detail: fmt.Sprintf("no %d-step window inside the non-idle ranges %v of %d steps", lastOffset+1, ranges, ep.Steps)}
		}
		start = valid[rng.IntN(len(valid))]
	} else if !startOK(start) {
		return nil, &SkipError{Reason: SkipIdle, Detail: fmt.Sprintf("window [%d, %d] outside the non-idle ranges %v", start, start+lastOffset, ranges)}
	}

	camera := cfg.Camera
	if camera == CameraRandomExterior {
		camera = CameraExterior1
		if rng.IntN(2) == 1 {
			camera = CameraExterior2
		}
	}
	all, err := ep.States()
	if err != nil {
		return nil, err
	}
	clip := &Clip{Camera: camera, Start: start, Indices: cfg.Indices(start)}
	states := make([]State, cfg.Frames)
	for k, i := range clip.Indices {
		states[k] = all[i]
	}
	actions := StatesToActions(states)
	if filters.Motion.Enabled && IsStatic(actions, filters.Motion) {
		return nil, &SkipError{Reason: SkipStatic, Detail: fmt.Sprintf("clip at steps %v barely moves", clip.Indices)}
	}
	clip.States, clip.Actions = StateRows(states), ActionRows(actions)
	clip.Extrinsics = make([][6]float64, cfg.Frames)
	clip.Frames = make([][]byte, cfg.Frames)
	key := "steps/observation/" + camera
	f, ok := ep.Example.Feature(key)
	if !ok {
		return nil, fmt.Errorf("data: episode %s: missing %s", ep.FilePath, key)
	}
	frames, err := f.Bytes()
	if err != nil {
		return nil, fmt.Errorf("data: episode %s: %s: %w", ep.FilePath, key, err)
	}
	if len(frames) != ep.Steps {
		return nil, fmt.Errorf("data: episode %s: %s has %d frames, want %d", ep.FilePath, key, len(frames), ep.Steps)
	}
	for k, i := range clip.Indices {
		clip.Frames[k] = frames[i]
	}
	return clip, nil
}

// IsStatic is the motion rule of MotionFilterConfig over a clip's T−1 pose actions.
func IsStatic(actions []Action, cfg MotionFilterConfig) bool {
	var trans, rot, grip float64
	for _, a := range actions {
		trans += math.Sqrt(a[0]*a[0] + a[1]*a[1] + a[2]*a[2])
		rot += RotationAngle(EulerXYZToMatrix(a[3], a[4], a[5]))
		grip += math.Abs(a[6])
	}
	return trans < cfg.MinTranslation && rot < cfg.MinRotation && grip < cfg.MinGripper
}
