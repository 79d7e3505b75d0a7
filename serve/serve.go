// Package serve keeps a world model resident on the device behind a small HTTP JSON API, so that a
// robot's control loop can ask it for the next action (spec planning §4: execute the first action, plan
// again). Endpoints:
//
//	POST /plan     {"image": base64, "goals": [base64…], "state": […], optional "switch", "planning_step",
//	               "planner", "seed" and search settings} → {"action", "plan", "energy", "goal", …}
//	GET  /healthz  {"status": "ok", "queued", "served", "failed"}
//	GET  /info     the model's widths, state rule, default settings, limits and normalization
//
// States and actions are the robot's raw units in requests and answers. A model whose adapter was
// trained on normalized vectors (LeRobot's data.lerobot.normalize) normalizes the state and each
// candidate action itself (plan.Options.Normalization); /info gives the statistics and each answer the
// mode.
//
// Requests are decoded and checked on their own goroutines (JSON, base64, image headers and sizes, the
// state against the predictor's width, the settings against the limits) and answered 4xx with the field
// at fault; valid ones queue for the device, which one worker goroutine runs one at a time (the model and
// its recorded streams are not safe for concurrent use). A full queue answers 503 at once; a request
// still waiting or running at its deadline answers 504. Panics are recovered into 500s, in handlers and
// in the worker, so that one request never takes the server down. Goal images are cached by content:
// a control loop sends the same goal at every step.
package serve

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"log"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
	"github.com/vjepa-vk/vjepa-vk/plan"
)

// Model is what the server runs on the device; *plan.WorldModel is one.
type Model interface {
	Encode(img image.Image) (plan.Rep, error)
	PlanStep(p plan.Planner, st plan.Settings, gd plan.GDSettings, context, goal plan.Rep, start []float64, seed uint64) (*plan.Step, error)
	ActionWidth() int
	StateWidth() int
	StateRule() plan.StateRule
}

// Config configures a Server.
type Config struct {
	Planner  plan.Planner    // default planner
	Settings plan.Settings   // default CEM settings (fitting the model's action width)
	GD       plan.GDSettings // default gradient planner settings
	// Limits on what a request may ask: body bytes, pixels per image, goals, and the search's size.
	MaxBody       int64
	MaxPixels     int64
	MaxGoals      int
	MaxSamples    int
	MaxIterations int
	MaxHorizon    int
	MaxGDSteps    int
	// Queue is how many requests may wait for the device; more are refused (503).
	Queue int
	// Timeout bounds a request from its arrival to its answer, waiting included (504 past it).
	Timeout time.Duration
	// GoalCache is how many encoded goal images are kept (by content); 0 keeps none.
	GoalCache int
	// Info is shown by GET /info next to the model's widths and the settings (device, weights, adapter).
	Info map[string]any
	// Normalization is what the model does to a request's state and its candidate actions before the
	// predictor (plan.Options.Normalization), shown by GET /info and named in each answer; requests and
	// answers stay in the robot's raw units. nil: none.
	Normalization *lerobot.Normalization
	// Log receives one line per failed request and per recovered panic; nil: the standard logger.
	Log *log.Logger
}

// DefaultConfig is a server with the wrapper's CEM, 4 queued requests, a 2-minute deadline, 32 MiB
// bodies, images up to 4096×4096, up to 8 goals, and searches up to 4× the paper's.
func DefaultConfig() Config {
	return Config{Planner: plan.PlannerCEM, Settings: plan.WrapperSettings(), GD: plan.DefaultGDSettings(),
		MaxBody: 32 << 20, MaxPixels: 1 << 24, MaxGoals: 8, MaxSamples: 3200, MaxIterations: 100, MaxHorizon: 8,
		MaxGDSteps: 1000, Queue: 4, Timeout: 2 * time.Minute, GoalCache: 16}
}

// Server is the HTTP API of one model.
type Server struct {
	m    Model
	cfg  Config
	jobs chan *job // admitted jobs, and jobs whose handlers gave up while they waited (skipped)
	// waiting counts the admitted jobs neither started nor given up: the queue Config.Queue bounds. A job
	// that gave up frees its place at once, not when the worker reaches it.
	waiting atomic.Int64
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	log     *log.Logger
	goals   goalCache // used by the worker only

	served, failed atomic.Int64
}

// New checks cfg against the model and starts the device worker; Close stops it.
func New(m Model, cfg Config) (*Server, error) {
	if m == nil {
		return nil, fmt.Errorf("serve: no model")
	}
	if err := cfg.Planner.Check(); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	st, err := cfg.Settings.ForWidth(m.ActionWidth())
	if err != nil {
		return nil, fmt.Errorf("serve: default settings: %w", err)
	}
	cfg.Settings = st
	if n := cfg.Normalization; n != nil {
		if z, a := n.Widths(); z != m.StateWidth() || a != m.ActionWidth() {
			return nil, fmt.Errorf("serve: normalization of %d-D states and %d-D actions, the model takes %d-D and %d-D", z, a, m.StateWidth(), m.ActionWidth())
		}
	}
	if err := cfg.GD.Validate(); err != nil {
		return nil, fmt.Errorf("serve: default gradient settings: %w", err)
	}
	switch {
	case cfg.MaxBody < 1 || cfg.MaxPixels < 1 || cfg.MaxGoals < 1 || cfg.MaxSamples < 2 || cfg.MaxIterations < 1 ||
		cfg.MaxHorizon < 1 || cfg.MaxGDSteps < 1:
		return nil, fmt.Errorf("serve: limits %+v: each must be positive", cfg)
	case cfg.Queue < 1 || cfg.Timeout <= 0 || cfg.GoalCache < 0:
		return nil, fmt.Errorf("serve: queue %d, timeout %v, goal cache %d: want a queue >= 1, a positive timeout, a cache >= 0",
			cfg.Queue, cfg.Timeout, cfg.GoalCache)
	}
	s := &Server{m: m, cfg: cfg, jobs: make(chan *job, cfg.Queue+jobsSlack), stop: make(chan struct{}), done: make(chan struct{}),
		log: cfg.Log, goals: goalCache{max: cfg.GoalCache}}
	if s.log == nil {
		s.log = log.Default()
	}
	go s.worker()
	return s, nil
}

// Close stops the worker after the job it is running; queued jobs are answered 503. Call it after the
// HTTP server has shut down (http.Server.Shutdown waits for the handlers, which wait for their jobs).
func (s *Server) Close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

// Handler is the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/plan", s.handlePlan)
	mux.HandleFunc("/healthz", s.handleHealth)
	mux.HandleFunc("/info", s.handleInfo)
	return s.recoverPanics(mux)
}

// apiError is an answer other than 200: the status, the request field at fault (if any) and why.
type apiError struct {
	Status int    `json:"-"`
	Field  string `json:"field,omitempty"`
	Msg    string `json:"error"`
}

func (e *apiError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func badField(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	s.log.Printf("serve: %s %s: %d %v", r.Method, r.URL.Path, e.Status, e)
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.Status, e)
}

// recoverPanics turns a panic in a handler into a 500 for that request.
func (s *Server) recoverPanics(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.failed.Add(1)
				s.log.Printf("serve: panic in %s %s: %v\n%s", r.Method, r.URL.Path, v, debug.Stack())
				writeJSON(w, http.StatusInternalServerError, &apiError{Msg: fmt.Sprintf("internal error: %v", v)})
			}
		}()
		h.ServeHTTP(w, r)
	})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.writeError(w, r, &apiError{Status: http.StatusMethodNotAllowed, Msg: r.Method + " /healthz: want GET"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "queued": s.waiting.Load(), "served": s.served.Load(),
		"failed": s.failed.Load()})
}

// Info is what GET /info answers.
type Info struct {
	ActionWidth int             `json:"action_width"`
	StateWidth  int             `json:"state_width"`
	StateRule   plan.StateRule  `json:"state_rule"`
	Planner     plan.Planner    `json:"planner"`
	Settings    plan.Settings   `json:"settings"`
	GD          plan.GDSettings `json:"gd_settings"`
	Limits      map[string]any  `json:"limits"`
	Model       map[string]any  `json:"model,omitempty"`
	// Normalization is Config.Normalization: the statistics the state and actions are normalized with.
	Normalization *lerobot.Normalization `json:"normalization,omitempty"`
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.writeError(w, r, &apiError{Status: http.StatusMethodNotAllowed, Msg: r.Method + " /info: want GET"})
		return
	}
	c := s.cfg
	writeJSON(w, http.StatusOK, Info{ActionWidth: s.m.ActionWidth(), StateWidth: s.m.StateWidth(), StateRule: s.m.StateRule(),
		Planner: c.Planner, Settings: c.Settings, GD: c.GD, Model: c.Info, Normalization: c.Normalization,
		Limits: map[string]any{"max_body_bytes": c.MaxBody, "max_pixels": c.MaxPixels, "max_goals": c.MaxGoals,
			"max_samples": c.MaxSamples, "max_iterations": c.MaxIterations, "max_horizon": c.MaxHorizon,
			"max_gd_steps": c.MaxGDSteps, "queue": c.Queue, "timeout_s": c.Timeout.Seconds()}})
}

// PlanRequest is the body of POST /plan. Images are base64 (standard encoding) PNG or JPEG files.
type PlanRequest struct {
	Image string    `json:"image"` // the current observation
	Goals []string  `json:"goals"` // one goal image, or sub-goals with Switch
	State []float64 `json:"state"` // the robot state (DROID: x,y,z in m, roll,pitch,yaw in rad, gripper 0..1)
	// Switch gives the planning steps per goal (the paper's 4,10,4 for three sub-goals) and PlanningStep
	// this request's index in the task: the goal is picked from them.
	Switch       []int  `json:"switch,omitempty"`
	PlanningStep int    `json:"planning_step,omitempty"`
	Planner      string `json:"planner,omitempty"` // cem, gd or cem+gd (default: the server's)
	Seed         uint64 `json:"seed,omitempty"`
	// Overrides of the server's settings (0 or absent: the server's).
	Samples      int     `json:"samples,omitempty"`
	Iterations   int     `json:"iterations,omitempty"`
	TopK         int     `json:"topk,omitempty"`
	Horizon      int     `json:"horizon,omitempty"`
	MaxNorm      float64 `json:"maxnorm,omitempty"`
	CloseGripper *int    `json:"close_gripper,omitempty"`
	GDSteps      int     `json:"gd_steps,omitempty"`
	GDLR         float64 `json:"gd_lr,omitempty"`
}

// PlanResponse is the answer of POST /plan.
type PlanResponse struct {
	Action     []float64        `json:"action"` // execute this one, then ask again
	Plan       [][]float64      `json:"plan"`
	Energy     float64          `json:"energy"`
	Goal       int              `json:"goal"` // the goal planned towards
	Planner    plan.Planner     `json:"planner"`
	Iterations []plan.Iteration `json:"iterations,omitempty"`
	GDTrace    []plan.GDStep    `json:"gd_trace,omitempty"`
	Cost       plan.PlanCost    `json:"cost"`
	Timings    Timings          `json:"timings"`
	// Normalization is the mode (mean_std, min_max) the state and candidate actions were normalized
	// with for the predictor (GET /info has the statistics); action and plan are raw. Absent: none.
	Normalization string `json:"normalization,omitempty"`
}

// Timings of a request, in seconds.
type Timings struct {
	Queue  float64 `json:"queue_s"`  // waiting for the device
	Encode float64 `json:"encode_s"` // the observation and the goal (unless cached)
	Plan   float64 `json:"plan_s"`
	Total  float64 `json:"total_s"` // from arrival to answer
}

// jobsSlack is room in the job channel for jobs that gave up while the device was busy and are still in it:
// beyond Queue live ones plus this many of those, requests are refused (503) until the worker catches up.
const jobsSlack = 1024

// Job states: queued until the worker takes it or its handler gives up, whichever is first.
const (
	jobQueued int32 = iota
	jobTaken
	jobAbandoned
)

// job is a checked request waiting for the device.
type job struct {
	status   atomic.Int32 // jobQueued, jobTaken or jobAbandoned
	ctx      context.Context
	arrived  time.Time
	image    image.Image
	goal     image.Image
	goalKey  [32]byte
	goalIdx  int
	state    []float64
	planner  plan.Planner
	settings plan.Settings
	gd       plan.GDSettings
	seed     uint64
	reply    chan jobResult // buffered: the worker never blocks on a request that gave up
}

type jobResult struct {
	resp *PlanResponse
	err  *apiError
}

func (s *Server) handlePlan(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.writeError(w, r, &apiError{Status: http.StatusMethodNotAllowed, Msg: r.Method + " /plan: want POST with a JSON body"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	j, e := s.parse(w, r)
	if e != nil {
		s.failed.Add(1)
		s.writeError(w, r, e)
		return
	}
	j.ctx, j.arrived, j.reply = ctx, arrived, make(chan jobResult, 1)
	admitted := s.waiting.Add(1) <= int64(s.cfg.Queue)
	if admitted {
		select {
		case s.jobs <- j:
		default:
			admitted = false
		}
	}
	if !admitted {
		s.waiting.Add(-1)
		s.failed.Add(1)
		s.writeError(w, r, &apiError{Status: http.StatusServiceUnavailable,
			Msg: fmt.Sprintf("busy: %d requests are waiting for the device; retry later", s.cfg.Queue)})
		return
	}
	select {
	case res := <-j.reply:
		if res.err != nil {
			s.failed.Add(1)
			s.writeError(w, r, res.err)
			return
		}
		s.served.Add(1)
		res.resp.Timings.Total = time.Since(arrived).Seconds()
		writeJSON(w, http.StatusOK, res.resp)
	case <-ctx.Done():
		if j.status.CompareAndSwap(jobQueued, jobAbandoned) {
			s.waiting.Add(-1)
		}
		s.failed.Add(1)
		if r.Context().Err() != nil {
			return // the client is gone
		}
		s.writeError(w, r, &apiError{Status: http.StatusGatewayTimeout,
			Msg: fmt.Sprintf("no plan within the server's %v deadline (queue and device included)", s.cfg.Timeout)})
	}
}

// parse reads and checks a plan request: everything that can be wrong with it is found here, before it
// takes a place in the queue.
func (s *Server) parse(w http.ResponseWriter, r *http.Request) (*job, *apiError) {
	var req PlanRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooBig):
			return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("body over %d bytes", tooBig.Limit)}
		case errors.As(err, &typeErr):
			return nil, badField(typeErr.Field, "want %s, got %s", typeErr.Type, typeErr.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return nil, badField(f, "unknown field (see GET /info and the PlanRequest fields)")
		case errors.Is(err, io.EOF):
			return nil, badField("", "empty body: want a JSON object")
		}
		return nil, badField("", "body is not a JSON object: %v", err)
	}
	if dec.More() {
		return nil, badField("", "body holds more than one JSON value")
	}
	j := &job{seed: req.Seed}
	var e *apiError
	if j.image, _, e = s.decodeImage("image", req.Image); e != nil {
		return nil, e
	}
	switch {
	case len(req.Goals) == 0:
		return nil, badField("goals", "at least one goal image is required")
	case len(req.Goals) > s.cfg.MaxGoals:
		return nil, badField("goals", "%d goals, at most %d", len(req.Goals), s.cfg.MaxGoals)
	}
	sched, err := plan.ParseSchedule(joinInts(req.Switch), len(req.Goals))
	if err != nil {
		return nil, badField("switch", "%v", err)
	}
	if req.PlanningStep < 0 {
		return nil, badField("planning_step", "%d: want >= 0", req.PlanningStep)
	}
	j.goalIdx = sched.Goal(req.PlanningStep)
	field := fmt.Sprintf("goals[%d]", j.goalIdx)
	for i, g := range req.Goals { // every goal must be valid, not only the one planned towards now
		if i == j.goalIdx {
			continue
		}
		if _, err := base64.StdEncoding.DecodeString(g); err != nil || g == "" {
			return nil, badField(fmt.Sprintf("goals[%d]", i), "want a base64 PNG or JPEG")
		}
	}
	var raw []byte
	if j.goal, raw, e = s.decodeImage(field, req.Goals[j.goalIdx]); e != nil {
		return nil, e
	}
	j.goalKey = sha256.Sum256(raw)
	if req.State == nil {
		return nil, badField("state", "required: %d numbers", s.m.StateWidth())
	}
	if err := plan.CheckStateOf(req.State, s.m.StateWidth(), s.m.StateRule()); err != nil {
		return nil, badField("state", "%v", err)
	}
	j.state = req.State
	j.planner = s.cfg.Planner
	if req.Planner != "" {
		j.planner = plan.Planner(req.Planner)
		if err := j.planner.Check(); err != nil {
			return nil, badField("planner", "%v", err)
		}
	}
	if j.settings, j.gd, e = s.settings(req); e != nil {
		return nil, e
	}
	return j, nil
}

// settings are the server's settings with the request's overrides, within the limits.
func (s *Server) settings(req PlanRequest) (plan.Settings, plan.GDSettings, *apiError) {
	st, gd, c := s.cfg.Settings, s.cfg.GD, s.cfg
	for _, o := range []struct {
		field  string
		v, max int
		dst    *int
	}{{"samples", req.Samples, c.MaxSamples, &st.Samples}, {"iterations", req.Iterations, c.MaxIterations, &st.Iterations},
		{"topk", req.TopK, c.MaxSamples, &st.TopK}, {"horizon", req.Horizon, c.MaxHorizon, &st.Horizon},
		{"gd_steps", req.GDSteps, c.MaxGDSteps, &gd.Steps}} {
		switch {
		case o.v < 0 || o.v > o.max:
			return st, gd, badField(o.field, "%d: want 1..%d (0 or absent: the server's %d)", o.v, o.max, *o.dst)
		case o.v > 0:
			*o.dst = o.v
		}
	}
	if req.MaxNorm != 0 {
		if st.Space != nil {
			return st, gd, badField("maxnorm", "the server searches its own space (GET /info), not DROID's maxnorm box")
		}
		st.MaxNorm = req.MaxNorm
	}
	if req.CloseGripper != nil {
		st.CloseGripper = *req.CloseGripper
	}
	if req.GDLR != 0 {
		gd.LR = req.GDLR
	}
	if err := st.Validate(); err != nil {
		return st, gd, badField("settings", "%v", err)
	}
	if err := gd.Validate(); err != nil {
		return st, gd, badField("settings", "%v", err)
	}
	return st, gd, nil
}

// decodeImage decodes a base64 PNG or JPEG within the server's pixel limit, returning its bytes too.
func (s *Server) decodeImage(field, b64 string) (image.Image, []byte, *apiError) {
	if b64 == "" {
		return nil, nil, badField(field, "required: a base64 PNG or JPEG")
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, nil, badField(field, "not base64 (standard encoding): %v", err)
	}
	img, err := plan.DecodeImage(raw, s.cfg.MaxPixels)
	if err != nil {
		return nil, nil, badField(field, "%v", err)
	}
	return img, raw, nil
}

func joinInts(v []int) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ",")
}

// worker runs the queued jobs one at a time on the device.
func (s *Server) worker() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			for {
				select {
				case j := <-s.jobs:
					if s.take(j) {
						j.reply <- jobResult{err: &apiError{Status: http.StatusServiceUnavailable, Msg: "the server is shutting down"}}
					}
				default:
					return
				}
			}
		case j := <-s.jobs:
			if !s.take(j) || j.ctx.Err() != nil {
				continue // its handler answered already (deadline, or the client left)
			}
			j.reply <- s.run(j)
		}
	}
}

// take claims a queued job for the worker, freeing its place in the queue; false when its handler gave up.
func (s *Server) take(j *job) bool {
	if !j.status.CompareAndSwap(jobQueued, jobTaken) {
		return false
	}
	s.waiting.Add(-1)
	return true
}

// run plans one job, turning a panic of the model code into a 500.
func (s *Server) run(j *job) (res jobResult) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Printf("serve: panic while planning: %v\n%s", v, debug.Stack())
			res = jobResult{err: &apiError{Status: http.StatusInternalServerError, Msg: fmt.Sprintf("internal error while planning: %v", v)}}
		}
	}()
	started := time.Now()
	ctxRep, err := s.m.Encode(j.image)
	if err != nil {
		return jobResult{err: &apiError{Status: http.StatusInternalServerError, Msg: fmt.Sprintf("encode image: %v", err)}}
	}
	goalRep, ok := s.goals.get(j.goalKey)
	if !ok {
		if goalRep, err = s.m.Encode(j.goal); err != nil {
			return jobResult{err: &apiError{Status: http.StatusInternalServerError, Msg: fmt.Sprintf("encode goal: %v", err)}}
		}
		s.goals.put(j.goalKey, goalRep)
	}
	encoded := time.Now()
	step, err := s.m.PlanStep(j.planner, j.settings, j.gd, ctxRep, goalRep, j.state, j.seed)
	if err != nil {
		return jobResult{err: &apiError{Status: http.StatusInternalServerError, Msg: fmt.Sprintf("plan: %v", err)}}
	}
	resp := &PlanResponse{Action: step.Action, Plan: step.Plan, Energy: step.Energy, Goal: j.goalIdx, Planner: step.Planner,
		Cost: step.Cost, Timings: Timings{Queue: started.Sub(j.arrived).Seconds(), Encode: encoded.Sub(started).Seconds(),
			Plan: time.Since(encoded).Seconds()}}
	if n := s.cfg.Normalization; n != nil {
		resp.Normalization = n.Mode
	}
	if step.CEM != nil {
		resp.Iterations = step.CEM.Iterations
	}
	if step.GD != nil {
		resp.GDTrace = step.GD.Trace
	}
	return jobResult{resp: resp}
}

// goalCache keeps the representations of the last goal images by content (the worker's alone).
type goalCache struct {
	max   int
	order [][32]byte
	reps  map[[32]byte]plan.Rep
}

func (c *goalCache) get(k [32]byte) (plan.Rep, bool) {
	r, ok := c.reps[k]
	return r, ok
}

func (c *goalCache) put(k [32]byte, r plan.Rep) {
	if c.max == 0 {
		return
	}
	if c.reps == nil {
		c.reps = map[[32]byte]plan.Rep{}
	}
	if len(c.order) == c.max {
		delete(c.reps, c.order[0])
		c.order = c.order[1:]
	}
	c.order = append(c.order, k)
	c.reps[k] = r
}
