package plan

import (
	"fmt"
	"image"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/vjepa-vk/vjepa-vk/data"
	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
	"github.com/vjepa-vk/vjepa-vk/model"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// DefaultMemoryBudget bounds the rollout's activations (and K/V cache) when Options.Chunk is 0: with the
// official ViT-g encoder and predictor loaded in bf16 (about 2.6 GiB) the planner stays under 19 GiB, so it
// fits a 24 GB card.
const DefaultMemoryBudget int64 = 16 << 30

// Rep is a frame's representation [HW·E]: encoder tokens after the parameter-free LayerNorm (planning §2).
type Rep []float32

// Options are the WorldModel's inference settings.
type Options struct {
	// Chunk is the number of candidates rolled out at once; 0 picks the largest whose rollout fits
	// MemoryBudget (and three quarters of the device's memory).
	Chunk int
	// MemoryBudget in bytes for the rollout when Chunk is 0; 0 means DefaultMemoryBudget.
	MemoryBudget int64
	// NoKVCache recomputes every frame at every rollout step instead of caching keys and values.
	NoKVCache bool
	// Extrinsics is the camera's 6-D extrinsics token input, for predictors built with it.
	Extrinsics [model.ExtrinsicsDim]float64
	// StateRule moves the planned states; "" is DefaultStateRule of the predictor's widths.
	StateRule StateRule
	// GradCheckpoint makes the gradient planner's passes keep only their block inputs (less memory, one
	// more forward per block).
	GradCheckpoint bool
	// Normalization is what a predictor trained on a LeRobot dataset with data.lerobot.normalize learnt
	// its state and action vectors through; nil: the raw vectors (the official model, and every run
	// without it).
	//
	// Every vector the world model takes or gives stays in the robot's raw units: start states, actions,
	// search spaces, plans, energy grids. The states are rolled by the state rule in raw units, and the
	// states and actions are normalized only as they are uploaded for the predictor (the gradient planner's
	// gradients are chained back through the normalization). Planners therefore search raw actions, so that
	// their settings keep their meaning (cem()'s maxnorm box and std are metres of DROID motion, a
	// --search range is the robot's own), and a plan needs no mapping back: the normalized space, where
	// one unit is a standard deviation of the data (or half its range), would make those settings
	// arbitrary.
	Normalization *lerobot.Normalization
}

// Timings accumulate the device work of a WorldModel (wall clock, upload to download).
type Timings struct {
	Encode    time.Duration `json:"encode_s"`
	Rollout   time.Duration `json:"rollout_s"`
	Gradient  time.Duration `json:"gradient_s"` // the gradient planner's forward and backward passes
	Encodes   int           `json:"encodes"`
	Rollouts  int           `json:"rollouts"`
	Gradients int           `json:"gradients"`
}

// WorldModel is a V-JEPA 2-AC encoder and predictor on a device: it encodes images into representations
// and scores candidate action sequences (spec planning §1–§3). It owns neither model; Close frees only
// what it allocated.
type WorldModel struct {
	Pred    *model.Predictor
	Enc     *model.Encoder // nil: Encode is unavailable (representations come from elsewhere)
	Img     int            // encoder input side in pixels (square, planning §2)
	Tubelet int            // frames per tubelet: an image is repeated to fill one
	Timings Timings

	opts    Options
	d       *vk.Device
	rule    StateRule
	scorers map[rolloutKind]*scorer
	enc     *encoder
	clipEnc map[int]*encoder // EncodeClip's passes by frame count
	// gradScorers are the gradient planner's recorded graphs by (samples, horizon).
	gradScorers map[[2]int]*gradScorer
}

// scorer is a recorded rollout for one (samples, horizon).
type scorer struct {
	r       *model.Rollout
	s       *vk.Stream
	actions []float32 // [H, S, A] upload buffers
	states  []float32 // [H, S, Z]
	goals   []float32 // [H, HW·E], or [H, S, HW·E] per sample
	context []float32 // [S, HW·E] per sample
}

// encoder is the recorded encoder pass of one image.
type encoder struct {
	pass  *model.EncoderPass
	s     *vk.Stream
	pre   *data.Preprocessor
	video []float32
}

// NewWorldModel wraps a loaded predictor (with its adapters, fused or merged) and optionally an encoder
// whose input is img×img pixels in tubelets of tubelet frames.
func NewWorldModel(pred *model.Predictor, enc *model.Encoder, img, tubelet int, opts Options) (*WorldModel, error) {
	if pred == nil {
		return nil, fmt.Errorf("plan: world model without a predictor")
	}
	if enc != nil && (img < 1 || tubelet < 1) {
		return nil, fmt.Errorf("plan: encoder input %d px, tubelet %d: both must be >= 1", img, tubelet)
	}
	rule := opts.StateRule
	if rule == "" {
		rule = DefaultStateRule(pred.Cfg.StateIn(), pred.Cfg.ActionIn())
	}
	if err := rule.Check(pred.Cfg.StateIn(), pred.Cfg.ActionIn()); err != nil {
		return nil, err
	}
	if opts.Chunk < 0 || opts.MemoryBudget < 0 {
		return nil, fmt.Errorf("plan: chunk %d and memory budget %d: must be >= 0", opts.Chunk, opts.MemoryBudget)
	}
	if n := opts.Normalization; n != nil {
		if z, a := n.Widths(); z != pred.Cfg.StateIn() || a != pred.Cfg.ActionIn() {
			return nil, fmt.Errorf("plan: normalization (%s, from %s) of %d-D states and %d-D actions, the predictor takes %d-D and %d-D",
				n.Mode, n.Source, z, a, pred.Cfg.StateIn(), pred.Cfg.ActionIn())
		}
	}
	return &WorldModel{Pred: pred, Enc: enc, Img: img, Tubelet: tubelet, opts: opts, d: pred.Device(), rule: rule,
		scorers: map[rolloutKind]*scorer{}}, nil
}

// Close frees the rollouts and the encoder pass (not the models).
func (w *WorldModel) Close() {
	for k, sc := range w.scorers {
		sc.s.Destroy()
		sc.r.Free()
		delete(w.scorers, k)
	}
	for k, gs := range w.gradScorers {
		gs.s.Destroy()
		gs.g.Free()
		delete(w.gradScorers, k)
	}
	for _, e := range append([]*encoder{w.enc}, slices.Collect(maps.Values(w.clipEnc))...) {
		if e != nil {
			e.s.Destroy()
			e.pass.Free()
		}
	}
	w.enc, w.clipEnc = nil, nil
}

// RepSize is the number of values of a representation, HW·E.
func (w *WorldModel) RepSize() int {
	c := w.Pred.Cfg
	return c.Grid * c.Grid * c.EmbedDim
}

// Encode is WorldModel.encode (planning §2): centre crop to a square, bilinear resize to Img, ImageNet
// normalisation, the frame repeated to fill a tubelet, the encoder, and the parameter-free LayerNorm.
func (w *WorldModel) Encode(img image.Image) (Rep, error) {
	if w.Enc == nil {
		return nil, fmt.Errorf("plan: encode: the world model has no encoder")
	}
	t0 := time.Now()
	if w.enc == nil {
		pre, err := data.NewPreprocessor(data.ImageConfig{Height: w.Img, Width: w.Img, MinRatio: 1, MaxRatio: 1})
		if err != nil {
			return nil, err
		}
		if w.enc, err = w.newEncoder(1); err != nil {
			return nil, err
		}
		w.enc.pre = pre
	}
	e := w.enc
	for t := range w.Tubelet {
		e.pre.FrameImage(e.video, w.Tubelet, t, img)
	}
	rep, err := w.encode(e)
	if err != nil {
		return nil, err
	}
	w.Timings.Encode += time.Since(t0)
	w.Timings.Encodes++
	return rep, nil
}

// EncodeClip encodes the T frames of a clip as the data pipeline delivers them (frames [3, T, Img, Img],
// cropped, resized and normalized, spec §7.7), each on its own as Encode does with an image (repeated to
// fill a tubelet, planning §2), in one encoder pass: the representation of every frame.
func (w *WorldModel) EncodeClip(frames []float32, T int) ([]Rep, error) {
	if w.Enc == nil {
		return nil, fmt.Errorf("plan: encode clip: the world model has no encoder")
	}
	plane := w.Img * w.Img
	if T < 1 || len(frames) != 3*T*plane {
		return nil, fmt.Errorf("plan: encode clip: %d values for %d frames, want [3, %d, %d, %d]", len(frames), T, T, w.Img, w.Img)
	}
	t0 := time.Now()
	e := w.clipEnc[T]
	if e == nil {
		var err error
		if e, err = w.newEncoder(T); err != nil {
			return nil, err
		}
		if w.clipEnc == nil {
			w.clipEnc = map[int]*encoder{}
		}
		w.clipEnc[T] = e
	}
	tt := w.Tubelet
	for t := range T {
		for c := range 3 {
			src := frames[(c*T+t)*plane:][:plane]
			for k := range tt {
				copy(e.video[((t*3+c)*tt+k)*plane:][:plane], src)
			}
		}
	}
	all, err := w.encode(e)
	if err != nil {
		return nil, err
	}
	n := w.RepSize()
	reps := make([]Rep, T)
	for t := range reps {
		reps[t] = all[t*n : (t+1)*n : (t+1)*n]
	}
	w.Timings.Encode += time.Since(t0)
	w.Timings.Encodes += T
	return reps, nil
}

// newEncoder records an encoder pass over B single frames, each repeated to fill a tubelet.
func (w *WorldModel) newEncoder(B int) (*encoder, error) {
	pass, err := w.Enc.NewPass(B, w.Tubelet, w.Img, w.Img)
	if err != nil {
		return nil, err
	}
	s, err := w.d.NewStream(false)
	if err != nil {
		pass.Free()
		return nil, err
	}
	pass.Forward(s)
	return &encoder{pass: pass, s: s, video: make([]float32, B*3*w.Tubelet*w.Img*w.Img)}, nil
}

// encode runs e on its video and returns the B representations [B·HW·E].
func (w *WorldModel) encode(e *encoder) ([]float32, error) {
	if err := w.d.Upload(e.pass.Video, e.video); err != nil {
		return nil, err
	}
	if err := e.s.Run(); err != nil {
		return nil, fmt.Errorf("plan: encode: %w", err)
	}
	out, err := w.d.Download(e.pass.OutLN)
	if err != nil {
		return nil, err
	}
	if len(out) != e.pass.B*w.RepSize() {
		return nil, fmt.Errorf("plan: encoder gives %d tokens × %d, the predictor wants %d patches × %d",
			e.pass.Tokens, w.Enc.Cfg.Dim, w.Pred.Cfg.Grid*w.Pred.Cfg.Grid, w.Pred.Cfg.EmbedDim)
	}
	return out, nil
}

// Chunk is the chunk size a rollout of samples × horizon runs with (one context and goal shared by all).
func (w *WorldModel) Chunk(samples, horizon int) (int, error) {
	return w.chunk(rolloutKind{samples: samples, horizon: horizon})
}

func (w *WorldModel) chunk(k rolloutKind) (int, error) {
	if w.opts.Chunk > 0 {
		return min(w.opts.Chunk, k.samples), nil
	}
	budget := w.opts.MemoryBudget
	if budget == 0 {
		budget = DefaultMemoryBudget
		if dev := int64(w.d.Info.DeviceLocalBytes); dev > 0 {
			budget = min(budget, dev/4*3)
		}
	}
	return model.ChunkForBudget(w.Pred.Cfg, w.adapterShape(), w.rolloutConfig(k, 0), budget)
}

// adapterShape is the predictor's adapters as a LoRAConfig for memory planning.
func (w *WorldModel) adapterShape() model.LoRAConfig {
	lc := model.LoRAConfig{}
	for _, a := range w.Pred.LoRAs {
		lc.R = max(lc.R, a.R)
		lc.Alpha = 1
	}
	return lc
}

// rolloutKind identifies a recorded rollout.
type rolloutKind struct {
	samples, horizon          int
	perSample, teacherForcing bool
}

func (w *WorldModel) rolloutConfig(k rolloutKind, chunk int) model.RolloutConfig {
	return model.RolloutConfig{Samples: k.samples, Horizon: k.horizon, Chunk: chunk, KVCache: !w.opts.NoKVCache,
		PerSample: k.perSample, TeacherForcing: k.teacherForcing}
}

func (w *WorldModel) scorer(k rolloutKind) (*scorer, error) {
	if sc, ok := w.scorers[k]; ok {
		return sc, nil
	}
	chunk, err := w.chunk(k)
	if err != nil {
		return nil, err
	}
	r, err := w.Pred.NewRollout(w.rolloutConfig(k, chunk))
	if err != nil {
		return nil, err
	}
	s, err := w.d.NewStream(false)
	if err != nil {
		r.Free()
		return nil, err
	}
	r.Record(s)
	if err := s.Err(); err != nil {
		s.Destroy()
		r.Free()
		return nil, fmt.Errorf("plan: record rollout of %d samples over %d steps: %w", k.samples, k.horizon, err)
	}
	if err := w.uploadExtrinsics(r.Extrinsics); err != nil {
		s.Destroy()
		r.Free()
		return nil, err
	}
	n := k.horizon * k.samples
	goals := k.horizon
	if k.perSample {
		goals *= k.samples
	}
	sc := &scorer{r: r, s: s, actions: make([]float32, n*w.ActionWidth()), states: make([]float32, n*w.StateWidth()),
		goals: make([]float32, goals*w.RepSize())}
	if k.perSample {
		sc.context = make([]float32, k.samples*w.RepSize())
	}
	w.scorers[k] = sc
	return sc, nil
}

// uploadExtrinsics fills t (any shape of 6-D rows) with the camera's extrinsics, for predictors that
// take them.
func (w *WorldModel) uploadExtrinsics(t vk.Tensor) error {
	if !w.Pred.Cfg.Extrinsics {
		return nil
	}
	ex := make([]float32, t.Numel())
	for i := range ex {
		ex[i] = float32(w.opts.Extrinsics[i%model.ExtrinsicsDim])
	}
	return w.d.Upload(t, ex)
}

// ActionWidth is the width of the predictor's actions (7 officially).
func (w *WorldModel) ActionWidth() int { return w.Pred.Cfg.ActionIn() }

// StateWidth is the width of the predictor's states (7 officially).
func (w *WorldModel) StateWidth() int { return w.Pred.Cfg.StateIn() }

// StateRule is how planned states follow the actions (Options.StateRule or DefaultStateRule).
func (w *WorldModel) StateRule() StateRule { return w.rule }

// checkActions checks that actions [S][H][A] is a non-empty rectangle of the predictor's action width.
func (w *WorldModel) checkActions(op string, actions [][][]float64) (S, H int, err error) {
	S = len(actions)
	if S == 0 || len(actions[0]) == 0 {
		return 0, 0, fmt.Errorf("plan: %s: no candidates or an empty action sequence", op)
	}
	H = len(actions[0])
	for s, seq := range actions {
		if len(seq) != H {
			return 0, 0, fmt.Errorf("plan: %s: candidate %d has %d actions, candidate 0 has %d", op, s, len(seq), H)
		}
		for h, a := range seq {
			if len(a) != w.ActionWidth() {
				return 0, 0, fmt.Errorf("plan: %s: candidate %d action %d has %d components, the predictor takes %d", op, s, h, len(a), w.ActionWidth())
			}
		}
	}
	return S, H, nil
}

// Score rolls every candidate actions[s] (H actions each) forward from context and the state start, and
// returns energies[s][h]: the mean L1 distance of its frame after action h to goals[h] (or to goals[0]
// when one goal is given). States follow the world model's state rule (compute_new_pose for DROID,
// planning §3).
func (w *WorldModel) Score(context Rep, goals []Rep, start []float64, actions [][][]float64) ([][]float64, error) {
	S, H, err := w.checkActions("score", actions)
	if err != nil {
		return nil, err
	}
	if len(goals) != 1 && len(goals) != H {
		return nil, fmt.Errorf("plan: score: %d goals for %d steps, want 1 or %d", len(goals), H, H)
	}
	if len(start) != w.StateWidth() {
		return nil, fmt.Errorf("plan: score: a %d-D start state, the predictor takes %d-D states", len(start), w.StateWidth())
	}
	n := w.RepSize()
	for i, g := range append([]Rep{context}, goals...) {
		if len(g) != n {
			return nil, fmt.Errorf("plan: score: representation %d has %d values, want HW·E = %d", i, len(g), n)
		}
	}
	states := make([][][]float64, S)
	for s, seq := range actions {
		states[s] = w.rule.Rollout(start, seq)
	}
	sc, err := w.scorer(rolloutKind{samples: S, horizon: H})
	if err != nil {
		return nil, err
	}
	for h := range H {
		copy(sc.goals[h*n:], goals[min(h, len(goals)-1)])
	}
	return w.run(sc, context, actions, states)
}

// ScoreEach rolls S independent sequences at once (evaluation over many clips): candidate s starts from
// contexts[s] with the given states[s][h] (e.g. the recorded ones) and actions[s][h], and its frame after
// action h is compared with goals[s][h]. With teacherForcing, frame h ≥ 1 of candidate s is goals[s][h−1]
// instead of its prediction (spec §6.2). It returns energies[s][h].
func (w *WorldModel) ScoreEach(contexts []Rep, goals [][]Rep, states, actions [][][]float64, teacherForcing bool) ([][]float64, error) {
	S, H, err := w.checkActions("score each", actions)
	if err != nil {
		return nil, err
	}
	if len(contexts) != S || len(goals) != S || len(states) != S {
		return nil, fmt.Errorf("plan: score each: %d contexts, %d goal sequences and %d state sequences for %d candidates",
			len(contexts), len(goals), len(states), S)
	}
	n := w.RepSize()
	for s := range S {
		if len(goals[s]) != H || len(states[s]) != H {
			return nil, fmt.Errorf("plan: score each: candidate %d has %d goals and %d states for %d actions", s, len(goals[s]), len(states[s]), H)
		}
		if len(contexts[s]) != n {
			return nil, fmt.Errorf("plan: score each: context %d has %d values, want HW·E = %d", s, len(contexts[s]), n)
		}
		for h := range H {
			if len(goals[s][h]) != n {
				return nil, fmt.Errorf("plan: score each: goal %d of candidate %d has %d values, want HW·E = %d", h, s, len(goals[s][h]), n)
			}
			if len(states[s][h]) != w.StateWidth() {
				return nil, fmt.Errorf("plan: score each: state %d of candidate %d has %d values, the predictor takes %d", h, s, len(states[s][h]), w.StateWidth())
			}
		}
	}
	sc, err := w.scorer(rolloutKind{samples: S, horizon: H, perSample: true, teacherForcing: teacherForcing})
	if err != nil {
		return nil, err
	}
	for s := range S {
		copy(sc.context[s*n:], contexts[s])
		for h := range H {
			copy(sc.goals[(h*S+s)*n:], goals[s][h])
		}
	}
	return w.run(sc, sc.context, actions, states)
}

// run uploads the inputs of a recorded rollout, runs it and returns energies[s][h].
func (w *WorldModel) run(sc *scorer, context []float32, actions, states [][][]float64) ([][]float64, error) {
	t0 := time.Now()
	S, H := len(actions), len(actions[0])
	A, Z := w.ActionWidth(), w.StateWidth()
	for s := range S {
		for h := range H {
			w.inputs(sc.actions[(h*S+s)*A:][:A], sc.states[(h*S+s)*Z:][:Z], actions[s][h], states[s][h])
		}
	}
	for _, u := range []struct {
		t vk.Tensor
		v []float32
	}{{sc.r.Context, context}, {sc.r.Goals, sc.goals}, {sc.r.Actions, sc.actions}, {sc.r.States, sc.states}} {
		if err := w.d.Upload(u.t, u.v); err != nil {
			return nil, err
		}
	}
	if err := sc.s.Run(); err != nil {
		return nil, fmt.Errorf("plan: rollout of %d samples over %d steps: %w", S, H, err)
	}
	flat, err := w.d.Download(sc.r.Energies)
	if err != nil {
		return nil, err
	}
	out := make([][]float64, S)
	for s := range out {
		out[s] = make([]float64, H)
		for h := range H {
			out[s][h] = float64(flat[h*S+s])
		}
	}
	w.Timings.Rollout += time.Since(t0)
	w.Timings.Rollouts++
	return out, nil
}

// inputs writes the predictor's inputs for one raw action and state into a and z: Options.Normalization
// applied, in float32.
func (w *WorldModel) inputs(a, z []float32, action, state []float64) {
	if n := w.opts.Normalization; n != nil {
		action, state = slices.Clone(action), slices.Clone(state)
		n.NormalizeAction(action, action)
		n.NormalizeState(state, state)
	}
	for k, v := range action {
		a[k] = float32(v)
	}
	for k, v := range state {
		z[k] = float32(v)
	}
}

// Normalization is Options.Normalization: what the predictor's inputs go through (nil: nothing).
func (w *WorldModel) Normalization() *lerobot.Normalization { return w.opts.Normalization }

// Energy is the CEM callback of the official planner: each candidate's energy after its last action,
// rolled from context and start, against goal.
func (w *WorldModel) Energy(context, goal Rep, start []float64) Energy {
	return func(actions [][][]float64) ([]float64, error) {
		e, err := w.Score(context, []Rep{goal}, start, actions)
		if err != nil {
			return nil, err
		}
		last := make([]float64, len(e))
		for s, row := range e {
			last[s] = row[len(row)-1]
		}
		return last, nil
	}
}

// CheckState validates a 7-D robot state (spec §7.4): finite numbers, Euler angles in radians within
// ±π, the gripper in [0, 1]. Angles beyond ±π are most likely degrees.
func CheckState(s data.State) error {
	for i, v := range s {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("state[%d] = %v: want a finite number", i, v)
		}
	}
	for i := 3; i < 6; i++ {
		// π stored as float32 (DROID's records) is 3.14159274, 8.7e-8 above π: allow a few f32 ulps.
		if math.Abs(s[i]) > math.Pi+1e-6 {
			return fmt.Errorf("state[%d] = %g: Euler angles are radians within ±π (degrees? %g° is %.4f rad)",
				i, s[i], s[i], s[i]*math.Pi/180)
		}
	}
	if g := s[gripperAxis]; g < 0 || g > 1 {
		return fmt.Errorf("state[%d] = %g: the gripper is in [0, 1] (0 open, 1 closed)", gripperAxis, g)
	}
	return nil
}
