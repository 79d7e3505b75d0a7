package train

// Metrics go to two sinks in the run folder (logging.dir), both flushed after every record so a crash
// loses nothing that was logged:
//
//   - metrics.jsonl: one JSON object per line, {"kind":"train"|"val"|"sync","wall_time":<unix s>,
//     ...fields}. JSON has no NaN or Inf, so non-finite values are written as null and read back as NaN. A
//     resumed run first drops the records at or after the step it restarts at (MetricsOptions.PurgeStep:
//     steps after the checkpoint that a crash threw away), then appends; readers keep the last record of
//     each (kind, step).
//   - events.out.tfevents.<unix time>.<host>: TensorBoard's format, a TFRecord stream (length, masked
//     CRC-32C of the length, payload, masked CRC-32C of the payload) of Event protos: the first has
//     file_version "brain.Event:2", each later one a Summary of simple_value scalars tagged
//     "train/<field>", "val/<field>" or "sync/<field>" (tbsummary.go has the other summaries: config text,
//     hparams, the purge marker). Encoded by hand with protowire, so no TensorFlow dependency. Weights &
//     Biases imports these files with `wandb sync --sync-tensorboard RUN_DIR`, and `tensorboard --logdir
//     RUN_DIR` shows them live.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vjepa-vk/vjepa-vk/data"
)

// MetricsFile is the JSONL file name inside the run folder.
const MetricsFile = "metrics.jsonl"

// StepMetrics is the record of one optimizer step.
type StepMetrics struct {
	Step        int     `json:"step"`
	Loss        float64 `json:"loss"`         // L_tf + L_ar (spec §6.4)
	LossTF      float64 `json:"loss_tf"`      // teacher-forcing loss (spec §6.2)
	LossRollout float64 `json:"loss_rollout"` // auto-regressive rollout loss (spec §6.3)
	LR          float64 `json:"lr"`
	WeightDecay float64 `json:"weight_decay"`
	GradNorm    float64 `json:"grad_norm"`  // global L2 norm of the unscaled gradients, before clipping
	LossScale   float64 `json:"loss_scale"` // dynamic loss scale used for this step
	Skipped     bool    `json:"skipped"`    // gradients were non-finite and the update was skipped
	StepTime    float64 `json:"step_time"`  // wall seconds of the whole step, data included
	ClipsPerSec float64 `json:"clips_per_s"`
}

// ValMetrics is the record of one validation pass.
type ValMetrics struct {
	Step        int     `json:"step"`
	Loss        float64 `json:"loss"`
	LossTF      float64 `json:"loss_tf"`
	LossRollout float64 `json:"loss_rollout"`
	// RolloutErr[k-1] is the mean |ẑ_k − z_k| of the k-th auto-regressive prediction, k = 1..auto_steps:
	// how fast errors compound along the rollout.
	RolloutErr []float64 `json:"rollout_err"`
	Clips      int       `json:"clips"` // validation clips evaluated
}

// SyncMetrics is the record of one background pass of the GCS mirror (gcssync.go). Counts are float64
// so that TensorBoard plots them.
type SyncMetrics struct {
	Step          int     `json:"step"` // training step when the pass ended
	OK            bool    `json:"ok"`
	Failures      float64 `json:"failures"`       // failed passes in a row (0 after a success)
	Retries       float64 `json:"retries"`        // requests retried since the run started
	Uploaded      float64 `json:"uploaded"`       // files uploaded since the run started
	UploadedBytes float64 `json:"uploaded_bytes"` // bytes uploaded since the run started
	SinceOK       float64 `json:"since_ok_s"`     // seconds since the last pass that succeeded (NaN: none yet)
	Error         string  `json:"error"`          // "" when OK
}

// MetricsOptions selects the sinks of a MetricsWriter.
type MetricsOptions struct {
	JSONL       bool
	TensorBoard bool
	Now         func() time.Time // wall clock; nil means time.Now
	Host        string           // event file suffix; "" means os.Hostname()
	// PurgeStep > 0 says the run restarts at this step (a resume from the checkpoint of PurgeStep-1):
	// records of earlier runs at or after it are dropped from metrics.jsonl, and the new event file starts
	// with TensorBoard's purge marker, as PyTorch's SummaryWriter(purge_step=PurgeStep) writes it.
	PurgeStep int
}

// MetricsWriter appends metrics to the run folder.
type MetricsWriter struct {
	mu         sync.Mutex
	now        func() time.Time
	jsonl      *os.File
	jsonlBuf   *bufio.Writer
	events     *os.File
	eventsBuf  *bufio.Writer
	jsonlPath  string
	eventsPath string
}

// NewMetricsWriter creates dir if needed and opens the selected sinks: metrics.jsonl in append mode and a
// new TensorBoard event file.
func NewMetricsWriter(dir string, o MetricsOptions) (*MetricsWriter, error) {
	m := &MetricsWriter{now: o.Now}
	if m.now == nil {
		m.now = time.Now
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("train: open metrics: %w", err)
	}
	if o.JSONL {
		m.jsonlPath = filepath.Join(dir, MetricsFile)
		if o.PurgeStep > 0 {
			if err := truncateMetrics(m.jsonlPath, o.PurgeStep); err != nil {
				return nil, err
			}
		}
		f, err := os.OpenFile(m.jsonlPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o666)
		if err != nil {
			return nil, fmt.Errorf("train: open metrics: %w", err)
		}
		m.jsonl, m.jsonlBuf = f, bufio.NewWriter(f)
	}
	if o.TensorBoard {
		host := o.Host
		if host == "" {
			host, _ = os.Hostname()
			if host == "" {
				host = "localhost"
			}
		}
		now := m.now()
		// A run resumed within the same second must not reuse its predecessor's file: TensorBoard reads
		// every file whose name contains "tfevents", so a numeric suffix keeps both.
		var f *os.File
		for i := 0; ; i++ {
			name := fmt.Sprintf("events.out.tfevents.%d.%s", now.Unix(), host)
			if i > 0 {
				name += fmt.Sprintf(".%d", i)
			}
			m.eventsPath = filepath.Join(dir, name)
			var err error
			f, err = os.OpenFile(m.eventsPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
			if err == nil {
				break
			}
			if !errors.Is(err, fs.ErrExist) || i >= 100 {
				m.Close()
				return nil, fmt.Errorf("train: open metrics: %w", err)
			}
		}
		m.events, m.eventsBuf = f, bufio.NewWriter(f)
		first := appendEvent(nil, wallTime(now), 0, "brain.Event:2", nil)
		if err := m.writeEvent(first); err != nil {
			m.Close()
			return nil, err
		}
		if o.PurgeStep > 0 {
			// SummaryWriter(purge_step=N): a file_version event and a SessionLog START, both at step N.
			// TensorBoard then drops every event of this run at step >= N read before the marker.
			wall := wallTime(m.now())
			for _, ev := range [][]byte{
				appendEvent(nil, wall, int64(o.PurgeStep), "brain.Event:2", nil),
				appendSessionStart(nil, wall, int64(o.PurgeStep)),
			} {
				if err := m.writeEvent(ev); err != nil {
					m.Close()
					return nil, err
				}
			}
		}
	}
	return m, nil
}

// truncateMetrics rewrites a metrics.jsonl without the records at or after step purge (and without a
// torn last line), atomically. A missing file is left missing.
func truncateMetrics(path string, purge int) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("train: truncate metrics: %w", err)
	}
	var kept []byte
	dropped := 0
	lines := bytes.SplitAfter(raw, []byte("\n"))
	for _, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if line[len(line)-1] != '\n' { // torn by a crash mid-write
			dropped++
			continue
		}
		var rec struct {
			Step *int `json:"step"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Step != nil && *rec.Step >= purge {
			dropped++
			continue
		}
		kept = append(kept, line...)
	}
	if dropped == 0 {
		return nil
	}
	err = writeFileAtomic(path, func(w io.Writer) error { _, err := w.Write(kept); return err })
	if err != nil {
		return fmt.Errorf("train: truncate metrics %s to step %d: %w", path, purge-1, err)
	}
	return nil
}

// Paths returns the JSONL and event file paths ("" for a disabled sink).
func (m *MetricsWriter) Paths() (jsonl, events string) { return m.jsonlPath, m.eventsPath }

// LogStep appends one training step.
func (m *MetricsWriter) LogStep(s StepMetrics) error { return m.log("train", s.Step, s) }

// LogVal appends one validation pass.
func (m *MetricsWriter) LogVal(v ValMetrics) error { return m.log("val", v.Step, v) }

// LogSync appends one pass of the GCS mirror.
func (m *MetricsWriter) LogSync(s SyncMetrics) error { return m.log("sync", s.Step, s) }

func (m *MetricsWriter) log(kind string, step int, rec any) error {
	if m == nil { // a data-parallel rank other than 0: rank 0 writes the run's metrics
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	wall := wallTime(m.now())
	if m.jsonlBuf != nil {
		line := appendRecordJSON(nil, kind, wall, rec)
		m.jsonlBuf.Write(append(line, '\n'))
		if err := m.jsonlBuf.Flush(); err != nil {
			return fmt.Errorf("train: write %s: %w", m.jsonlPath, err)
		}
	}
	if m.eventsBuf != nil {
		if err := m.writeEvent(appendEvent(nil, wall, int64(step), "", scalars(kind, rec))); err != nil {
			return err
		}
	}
	return nil
}

func (m *MetricsWriter) writeEvent(ev []byte) error {
	m.eventsBuf.Write(data.AppendRecord(nil, ev)) // TFRecord framing, shared with the RLDS reader
	if err := m.eventsBuf.Flush(); err != nil {
		return fmt.Errorf("train: write %s: %w", m.eventsPath, err)
	}
	return nil
}

// Close flushes and closes both files. A nil *MetricsWriter, like its LogStep and LogVal, does nothing.
func (m *MetricsWriter) Close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, f := range []*os.File{m.jsonl, m.events} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	m.jsonl, m.jsonlBuf, m.events, m.eventsBuf = nil, nil, nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("train: close metrics: %w", err)
	}
	return nil
}

func wallTime(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// appendRecordJSON writes {"kind":..,"wall_time":..,<json fields of rec in order>} with null for
// non-finite floats (encoding/json would refuse them).
func appendRecordJSON(b []byte, kind string, wall float64, rec any) []byte {
	b = append(b, `{"kind":`...)
	b = strconv.AppendQuote(b, kind)
	b = append(b, `,"wall_time":`...)
	b = strconv.AppendFloat(b, wall, 'f', -1, 64) // plain seconds, not 1.77e+09
	v := reflect.ValueOf(rec)
	for i := 0; i < v.NumField(); i++ {
		name := jsonName(v.Type().Field(i))
		if name == "" {
			continue
		}
		b = append(b, ',')
		b = strconv.AppendQuote(b, name)
		b = append(b, ':')
		switch f := v.Field(i); f.Kind() {
		case reflect.Float64:
			b = appendJSONFloat(b, f.Float())
		case reflect.Int, reflect.Int64:
			b = strconv.AppendInt(b, f.Int(), 10)
		case reflect.Bool:
			b = strconv.AppendBool(b, f.Bool())
		case reflect.String:
			js, _ := json.Marshal(f.String()) // strconv.Quote's escapes are not all JSON
			b = append(b, js...)
		case reflect.Slice:
			b = append(b, '[')
			for j := 0; j < f.Len(); j++ {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendJSONFloat(b, f.Index(j).Float())
			}
			b = append(b, ']')
		default:
			panic(fmt.Sprintf("train: metrics field %s has unsupported kind %s", name, f.Kind()))
		}
	}
	return append(b, '}')
}

func appendJSONFloat(b []byte, x float64) []byte {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, x, 'g', -1, 64)
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// decodeRecord fills the struct pointed to by dst from a decoded JSONL object; null floats become NaN.
func decodeRecord(obj map[string]json.RawMessage, dst any) error {
	v := reflect.ValueOf(dst).Elem()
	for i := 0; i < v.NumField(); i++ {
		name := jsonName(v.Type().Field(i))
		raw, ok := obj[name]
		f := v.Field(i)
		if !ok || string(raw) == "null" {
			if f.Kind() == reflect.Float64 {
				f.SetFloat(math.NaN())
			}
			continue
		}
		if f.Kind() == reflect.Slice {
			var xs []*float64
			if err := json.Unmarshal(raw, &xs); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			out := make([]float64, len(xs))
			for j, x := range xs {
				out[j] = math.NaN()
				if x != nil {
					out[j] = *x
				}
			}
			f.Set(reflect.ValueOf(out))
			continue
		}
		if err := json.Unmarshal(raw, f.Addr().Interface()); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// MetricsLog is a metrics.jsonl file read back, each slice sorted by step with one record per step.
type MetricsLog struct {
	Train []StepMetrics
	Val   []ValMetrics
	Sync  []SyncMetrics // the latest pass ending at each step
}

// ReadMetrics reads a metrics.jsonl file. A torn last line (a crash mid-write) is ignored; any other bad
// line is an error naming its line number. When a step appears twice (a resumed run re-did it), the later
// record wins.
func ReadMetrics(path string) (*MetricsLog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("train: read metrics: %w", err)
	}
	train := map[int]StepMetrics{}
	val := map[int]ValMetrics{}
	syncs := map[int]SyncMetrics{}
	lines := bytes.Split(data, []byte("\n"))
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		torn := i == len(lines)-1 // no trailing newline: the writer died mid-line
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(line, &obj); err != nil {
			if torn {
				break
			}
			return nil, fmt.Errorf("train: read metrics %s: line %d: %w", path, i+1, err)
		}
		var kind string
		json.Unmarshal(obj["kind"], &kind)
		switch kind {
		case "train":
			var s StepMetrics
			if err := decodeRecord(obj, &s); err != nil {
				return nil, fmt.Errorf("train: read metrics %s: line %d: %w", path, i+1, err)
			}
			train[s.Step] = s
		case "val":
			var v ValMetrics
			if err := decodeRecord(obj, &v); err != nil {
				return nil, fmt.Errorf("train: read metrics %s: line %d: %w", path, i+1, err)
			}
			val[v.Step] = v
		case "sync":
			var s SyncMetrics
			if err := decodeRecord(obj, &s); err != nil {
				return nil, fmt.Errorf("train: read metrics %s: line %d: %w", path, i+1, err)
			}
			syncs[s.Step] = s
		default:
			return nil, fmt.Errorf("train: read metrics %s: line %d: kind %q, want train, val or sync", path, i+1, kind)
		}
	}
	log := &MetricsLog{}
	for _, s := range train {
		log.Train = append(log.Train, s)
	}
	for _, v := range val {
		log.Val = append(log.Val, v)
	}
	for _, s := range syncs {
		log.Sync = append(log.Sync, s)
	}
	sort.Slice(log.Sync, func(i, j int) bool { return log.Sync[i].Step < log.Sync[j].Step })
	sort.Slice(log.Train, func(i, j int) bool { return log.Train[i].Step < log.Train[j].Step })
	sort.Slice(log.Val, func(i, j int) bool { return log.Val[i].Step < log.Val[j].Step })
	return log, nil
}

// tbScalar is one Summary.Value.
type tbScalar struct {
	tag   string
	value float32
}

// scalars lists the TensorBoard scalars of a record: "<kind>/<json name>" for every float field,
// "<kind>/<name>/k=<i>" for slice elements. Step and flags are not scalars.
func scalars(kind string, rec any) []tbScalar {
	var out []tbScalar
	v := reflect.ValueOf(rec)
	for i := 0; i < v.NumField(); i++ {
		name := jsonName(v.Type().Field(i))
		switch f := v.Field(i); f.Kind() {
		case reflect.Float64:
			out = append(out, tbScalar{kind + "/" + name, float32(f.Float())})
		case reflect.Slice:
			for j := 0; j < f.Len(); j++ {
				out = append(out, tbScalar{fmt.Sprintf("%s/%s/k=%d", kind, name, j+1), float32(f.Index(j).Float())})
			}
		}
	}
	return out
}

// appendEvent encodes one Event with either a file_version or a Summary of scalars.
func appendEvent(b []byte, wall float64, step int64, fileVersion string, values []tbScalar) []byte {
	var vals [][]byte
	for _, v := range values {
		vals = append(vals, appendSimpleValue(nil, v.tag, v.value))
	}
	return appendEventWith(b, wall, step, fileVersion, vals)
}
