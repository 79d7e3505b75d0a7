package serve_test

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vjepa-vk/vjepa-vk/plan"
	"github.com/vjepa-vk/vjepa-vk/plan/plantest"
	"github.com/vjepa-vk/vjepa-vk/serve"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

// pngB64 is a w×h test pattern as a base64 PNG.
func pngB64(t testing.TB, w, h, seed int) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(3*x + seed), uint8(5*y - seed), uint8(x*y + seed), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

// fakeModel plans instantly (or after Delay, or blocking on Gate), counting calls and the largest number
// of calls running at once; PanicOn panics in PlanStep.
type fakeModel struct {
	A, Z    int // widths; 0: DROID's 7 with compute_new_pose
	Delay   time.Duration
	Gate    chan struct{}
	Panic   atomic.Bool
	encodes atomic.Int64
	running atomic.Int64
	maxRun  atomic.Int64
	started chan struct{}
}

func (f *fakeModel) Encode(img image.Image) (plan.Rep, error) {
	f.encodes.Add(1)
	return plan.Rep{float32(img.Bounds().Dx())}, nil
}

func (f *fakeModel) PlanStep(p plan.Planner, st plan.Settings, gd plan.GDSettings, ctx, goal plan.Rep, start []float64, seed uint64) (*plan.Step, error) {
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for {
		m := f.maxRun.Load()
		if n <= m || f.maxRun.CompareAndSwap(m, n) {
			break
		}
	}
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.Gate != nil {
		<-f.Gate
	}
	time.Sleep(f.Delay)
	if f.Panic.Load() {
		panic("fake model: index out of range")
	}
	a := []float64{start[0], float64(st.Samples), float64(st.Horizon), 0, 0, 0, float64(ctx[0])}
	plans := make([][]float64, st.Horizon)
	for h := range plans {
		plans[h] = a
	}
	return &plan.Step{Planner: p, Action: a, Plan: plans, Energy: float64(goal[0])}, nil
}

func (f *fakeModel) ActionWidth() int { return cmp.Or(f.A, 7) }
func (f *fakeModel) StateWidth() int  { return cmp.Or(f.Z, 7) }
func (f *fakeModel) StateRule() plan.StateRule {
	if f.A == 0 {
		return plan.StatePose
	}
	return plan.StateHold
}

func newServer(t *testing.T, m serve.Model, edit func(*serve.Config)) (*serve.Server, *httptest.Server) {
	t.Helper()
	cfg := serve.DefaultConfig()
	cfg.Log = log.New(io.Discard, "", 0)
	if edit != nil {
		edit(&cfg)
	}
	s, err := serve.New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return s, hs
}

var droidState = []float64{0.45, -0.05, 0.32, 3.0, 0.1, -0.3, 0.2}

func planBody(t testing.TB, extra map[string]any) []byte {
	req := map[string]any{"image": pngB64(t, 80, 64, 0), "goals": []string{pngB64(t, 64, 64, 50)}, "state": droidState}
	for k, v := range extra {
		if v == nil {
			delete(req, k)
		} else {
			req[k] = v
		}
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends body to url and returns the status and the decoded JSON answer.
func post(t testing.TB, url string, body []byte) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("POST %s: %d with a body that is not JSON: %v", url, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// countingWorld counts the encodes of a real world model.
type countingWorld struct {
	*plan.WorldModel
	encodes int
}

func (c *countingWorld) Encode(img image.Image) (plan.Rep, error) {
	c.encodes++
	return c.WorldModel.Encode(img)
}

// TestServeWorldModel plans through the API with a real world model (the demo's sizes, random weights):
// the action and plan of CEM and of the gradient planner, a sub-goal schedule, and the goal cache.
func TestServeWorldModel(t *testing.T) {
	w := plantest.TinyWorld(t, vktest.Device(t), plan.Options{})
	cw := &countingWorld{WorldModel: w}
	_, hs := newServer(t, cw, func(c *serve.Config) { c.Settings.Samples, c.Settings.Iterations, c.Settings.TopK = 8, 2, 3 })
	resp := planOK(t, hs.URL, planBody(t, nil))
	if len(resp.Action) != 7 || len(resp.Plan) != 2 || len(resp.Iterations) != 2 || math.IsNaN(resp.Energy) || resp.Planner != plan.PlannerCEM {
		t.Fatalf("answer %+v", resp)
	}
	for k := range 3 {
		if math.Abs(resp.Action[k]) > 0.05 {
			t.Errorf("action %v outside the 0.05 box", resp.Action)
		}
	}
	if cw.encodes != 2 {
		t.Errorf("%d encodes for an observation and a goal", cw.encodes)
	}
	// The same goal again, the gradient planner, goal 1 of a 1,1 schedule at planning step 3.
	goals := []string{pngB64(t, 64, 64, 50), pngB64(t, 64, 64, 90)}
	code, out := post(t, hs.URL+"/plan", planBody(t, map[string]any{"planner": "gd", "gd_steps": 2, "horizon": 1}))
	if code != http.StatusOK || out["planner"] != "gd" || len(out["gd_trace"].([]any)) != 3 {
		t.Fatalf("POST /plan with gd: %d %v", code, out)
	}
	if cw.encodes != 3 {
		t.Errorf("%d encodes after a second request with the same goal, want 3 (the goal is cached)", cw.encodes)
	}
	code, out = post(t, hs.URL+"/plan", planBody(t, map[string]any{"goals": goals, "switch": []int{1, 1}, "planning_step": 3}))
	if code != http.StatusOK || out["goal"] != 1.0 {
		t.Errorf("sub-goal schedule: %d, goal %v; want goal 1", code, out["goal"])
	}
}

func TestServeBadRequests(t *testing.T) {
	_, hs := newServer(t, &fakeModel{}, func(c *serve.Config) { c.MaxBody = 1 << 20; c.MaxPixels = 80 * 64; c.MaxGoals = 2 })
	img := pngB64(t, 64, 64, 1)
	for _, c := range []struct {
		name   string
		body   []byte
		status int
		field  string
		want   string
	}{
		{"empty body", nil, 400, "", "empty body"},
		{"not JSON", []byte("image=1"), 400, "", "not a JSON object"},
		{"two values", []byte("{} {}"), 400, "", "more than one JSON value"},
		{"unknown field", planBody(t, map[string]any{"sample": 4}), 400, "sample", "unknown field"},
		{"state of strings", planBody(t, map[string]any{"state": "0,0,0"}), 400, "state", "want []float64"},
		{"no image", planBody(t, map[string]any{"image": nil}), 400, "image", "required"},
		{"bad base64", planBody(t, map[string]any{"image": "!!"}), 400, "image", "not base64"},
		{"not an image", planBody(t, map[string]any{"image": base64.StdEncoding.EncodeToString([]byte("hello"))}), 400, "image", "want PNG or JPEG"},
		{"too many pixels", planBody(t, map[string]any{"image": pngB64(t, 100, 64, 0)}), 400, "image", "more than the 5120 pixels"},
		{"no goals", planBody(t, map[string]any{"goals": []string{}}), 400, "goals", "at least one"},
		{"too many goals", planBody(t, map[string]any{"goals": []string{img, img, img}, "switch": []int{1, 1, 1}}), 400, "goals", "at most 2"},
		{"goals without switch", planBody(t, map[string]any{"goals": []string{img, img}}), 400, "switch", "need a switch schedule"},
		{"bad other goal", planBody(t, map[string]any{"goals": []string{img, "??"}, "switch": []int{1, 1}}), 400, "goals[1]", "base64"},
		{"bad goal", planBody(t, map[string]any{"goals": []string{"??"}}), 400, "goals[0]", "not base64"},
		{"planning step", planBody(t, map[string]any{"planning_step": -1}), 400, "planning_step", "-1"},
		{"no state", planBody(t, map[string]any{"state": nil}), 400, "state", "required: 7 numbers"},
		{"short state", planBody(t, map[string]any{"state": []float64{0, 0, 0}}), 400, "state", "3 values, the predictor takes 7"},
		{"degrees", planBody(t, map[string]any{"state": []float64{0.4, 0, 0.3, 178, 0, 0, 0.5}}), 400, "state", "degrees?"},
		{"gripper", planBody(t, map[string]any{"state": []float64{0.4, 0, 0.3, 0, 0, 0, 2}}), 400, "state", "gripper"},
		{"planner", planBody(t, map[string]any{"planner": "random"}), 400, "planner", `"random"`},
		{"samples", planBody(t, map[string]any{"samples": 100000}), 400, "samples", "want 1..3200"},
		{"negative horizon", planBody(t, map[string]any{"horizon": -2}), 400, "horizon", "-2"},
		{"topk above samples", planBody(t, map[string]any{"samples": 5, "topk": 9}), 400, "settings", "topk 9"},
		{"maxnorm", planBody(t, map[string]any{"maxnorm": -0.1}), 400, "settings", "maxnorm -0.1"},
		{"gd lr", planBody(t, map[string]any{"gd_lr": -1}), 400, "settings", "learning rate -1"},
		{"close gripper", planBody(t, map[string]any{"close_gripper": -3}), 400, "settings", "close_gripper -3"},
		{"body too large", planBody(t, map[string]any{"image": strings.Repeat("A", 2<<20)}), 413, "", "body over 1048576 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out := post(t, hs.URL+"/plan", c.body)
			msg, _ := out["error"].(string)
			field, _ := out["field"].(string)
			if code != c.status || field != c.field || !strings.Contains(msg, c.want) {
				t.Errorf("%d field %q %q; want %d field %q and %q", code, field, msg, c.status, c.field, c.want)
			}
		})
	}
	for _, c := range []struct {
		method, path string
		status       int
	}{{"GET", "/plan", 405}, {"POST", "/healthz", 405}, {"DELETE", "/info", 405}, {"GET", "/nothing", 404}} {
		req, _ := http.NewRequest(c.method, hs.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status || (c.status == 405 && resp.Header.Get("Allow") == "") {
			t.Errorf("%s %s: %d (Allow %q), want %d", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), c.status)
		}
	}
	// Still serving after all of that.
	if code, out := post(t, hs.URL+"/plan", planBody(t, nil)); code != 200 {
		t.Errorf("a good request after the bad ones: %d %v", code, out)
	}
}

// TestServeConcurrent sends 8 requests at once: all are answered, each its own, and the model never
// runs two at a time.
func TestServeConcurrent(t *testing.T) {
	f := &fakeModel{Delay: 20 * time.Millisecond}
	_, hs := newServer(t, f, func(c *serve.Config) { c.Queue = 8 })
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			state := append([]float64(nil), droidState...)
			state[0] = float64(i) / 10
			code, out := post(t, hs.URL+"/plan", planBody(t, map[string]any{"state": state, "samples": 10 + i}))
			if code != 200 {
				errs <- fmt.Sprintf("request %d: %d %v", i, code, out)
				return
			}
			a := out["action"].([]any)
			if a[0] != state[0] || a[1] != float64(10+i) {
				errs <- fmt.Sprintf("request %d got the answer %v of another", i, a)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if m := f.maxRun.Load(); m != 1 {
		t.Errorf("the model ran %d requests at once, want 1", m)
	}
	resp, err := http.Get(hs.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]any
	json.NewDecoder(resp.Body).Decode(&h)
	if h["status"] != "ok" || h["served"] != 8.0 || h["failed"] != 0.0 {
		t.Errorf("/healthz: %v", h)
	}
}

// TestServeBusyAndTimeout: with the device busy, a full queue answers 503 at once; a request whose
// deadline passes while it waits answers 504; the server serves again once the device is free.
func TestServeBusyAndTimeout(t *testing.T) {
	f := &fakeModel{Gate: make(chan struct{}), started: make(chan struct{}, 4)}
	s, hs := newServer(t, f, func(c *serve.Config) { c.Queue = 1; c.Timeout = 2 * time.Second })
	results := make(chan int, 2)
	go func() { c, _ := post(t, hs.URL+"/plan", planBody(t, nil)); results <- c }()
	<-f.started // request 1 runs, holding the device
	go func() { c, _ := post(t, hs.URL+"/plan", planBody(t, nil)); results <- c }()
	deadline := time.Now().Add(5 * time.Second)
	for { // request 2 waits in the queue
		resp, err := http.Get(hs.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		var h map[string]any
		json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if h["queued"] == 1.0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, out := post(t, hs.URL+"/plan", planBody(t, nil))
	if code != http.StatusServiceUnavailable || !strings.Contains(out["error"].(string), "busy") {
		t.Errorf("a third request with the queue full: %d %v", code, out)
	}
	// Both waiting requests pass their 2 s deadline: 504.
	for range 2 {
		if c := <-results; c != http.StatusGatewayTimeout {
			t.Errorf("a request past its deadline: %d, want 504", c)
		}
	}
	// Request 2 gave up its place in the queue with its 504, though the worker, still busy with request 1,
	// has not reached it: a new request is admitted (it once got 503 until the device freed up).
	type answer struct {
		code int
		out  map[string]any
	}
	if h := health(t, hs.URL); h["queued"] != 0.0 {
		t.Errorf("/healthz after both requests gave up: %v, want none queued", h)
	}
	fourth := make(chan answer, 1)
	go func() { c, o := post(t, hs.URL+"/plan", planBody(t, nil)); fourth <- answer{c, o} }()
	deadline = time.Now().Add(5 * time.Second)
	for queued := false; !queued; {
		select {
		case a := <-fourth:
			t.Fatalf("a request after the timeouts, the device still busy: %d %v, want it queued", a.code, a.out)
		default:
		}
		h := health(t, hs.URL)
		if queued = h["queued"] == 1.0; !queued {
			if time.Now().After(deadline) {
				t.Fatalf("the fourth request never queued: /healthz %v", h)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	close(f.Gate) // the device frees up; the worker skips request 2 and runs the fourth
	if a := <-fourth; a.code != 200 {
		t.Errorf("after the timeouts: %d %v", a.code, a.out)
	}
	_ = s
}

// health returns the server's /healthz.
func health(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestServePanic: a panic in the model answers that request 500 and the next one is served.
func TestServePanic(t *testing.T) {
	f := &fakeModel{}
	f.Panic.Store(true)
	_, hs := newServer(t, f, nil)
	code, out := post(t, hs.URL+"/plan", planBody(t, nil))
	if code != http.StatusInternalServerError || !strings.Contains(out["error"].(string), "index out of range") {
		t.Errorf("a panicking model: %d %v", code, out)
	}
	f.Panic.Store(false)
	if code, out := post(t, hs.URL+"/plan", planBody(t, nil)); code != 200 {
		t.Errorf("after the panic: %d %v", code, out)
	}
}

// planOK posts body to /plan, requires 200 and returns the answer, decoded.
func planOK(t *testing.T, base string, body []byte) serve.PlanResponse {
	t.Helper()
	code, out := post(t, base+"/plan", body)
	if code != http.StatusOK {
		t.Fatalf("POST /plan: %d %v", code, out)
	}
	var resp serve.PlanResponse
	b, _ := json.Marshal(out)
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// getInfo returns the server's GET /info, decoded.
func getInfo(t *testing.T, base string) serve.Info {
	t.Helper()
	resp, err := http.Get(base + "/info")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info serve.Info
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatalf("GET /info: %v", err)
	}
	return info
}

func TestServeInfo(t *testing.T) {
	_, hs := newServer(t, &fakeModel{}, func(c *serve.Config) { c.Info = map[string]any{"device": "test"} })
	info := getInfo(t, hs.URL)
	if info.ActionWidth != 7 || info.StateRule != plan.StatePose || info.Settings.Samples != 400 || info.Model["device"] != "test" ||
		info.Limits["queue"] != 4.0 {
		t.Errorf("/info: %+v", info)
	}
}

func TestServeNewBadConfig(t *testing.T) {
	for _, c := range []struct {
		edit func(*serve.Config)
		want string
	}{
		{func(c *serve.Config) { c.Planner = "x" }, `planner "x"`},
		{func(c *serve.Config) { c.Queue = 0 }, "queue 0"},
		{func(c *serve.Config) { c.Timeout = 0 }, "timeout 0s"},
		{func(c *serve.Config) { c.MaxBody = 0 }, "each must be positive"},
		{func(c *serve.Config) { c.Settings.TopK = 1 }, "topk 1"},
		{func(c *serve.Config) { sp := plan.BoxSpace(3, 1); c.Settings.Space = &sp }, "3-D, the predictor takes 7-D"},
	} {
		cfg := serve.DefaultConfig()
		c.edit(&cfg)
		if _, err := serve.New(&fakeModel{}, cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New: %v, want %q", err, c.want)
		}
	}
	if _, err := serve.New(nil, serve.DefaultConfig()); err == nil {
		t.Error("New without a model")
	}
}

// TestServeOwnWidths serves a robot of its own widths (6-D states, 4-D actions): its states are checked
// for their width only, and the default search covers every action component.
func TestServeOwnWidths(t *testing.T) {
	_, hs := newServer(t, &fakeModel{A: 4, Z: 6}, nil)
	state := []float64{0.1, 200, -3, 0, 0, 4} // joint angles in degrees are a robot's own business
	if code, out := post(t, hs.URL+"/plan", planBody(t, map[string]any{"state": state})); code != 200 {
		t.Errorf("a 6-D state: %d %v", code, out)
	}
	if code, out := post(t, hs.URL+"/plan", planBody(t, nil)); code != 400 || out["field"] != "state" {
		t.Errorf("a 7-D state for a 6-D robot: %d %v", code, out)
	}
	if code, out := post(t, hs.URL+"/plan", planBody(t, map[string]any{"state": state, "maxnorm": 0.1})); code != 400 || out["field"] != "maxnorm" {
		t.Errorf("maxnorm for a robot of its own space: %d %v", code, out)
	}
	info := getInfo(t, hs.URL)
	if info.Settings.Space == nil || info.Settings.Space.Width != 4 || len(info.Settings.Space.Dims) != 4 {
		t.Errorf("/info settings %+v: want every component of the 4-D action searched", info.Settings)
	}
}
