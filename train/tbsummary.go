package train

// TensorBoard protos, encoded by hand with protowire (no TensorFlow dependency). Field numbers are those
// of tensorflow/core/util/event.proto, tensorflow/core/framework/{summary,tensor,tensor_shape}.proto,
// google/protobuf/struct.proto and tensorboard/plugins/hparams/{api,plugin_data}.proto:
//
//	Event            wall_time 1 (double), step 2 (int64), file_version 3, summary 5, session_log 7
//	SessionLog       status 1 (START = 1)
//	Summary          value 1 (repeated Summary.Value)
//	Summary.Value    tag 1, simple_value 2 (float), tensor 8, metadata 9
//	SummaryMetadata  plugin_data 1 {plugin_name 1, content 2}
//	TensorProto      dtype 1 (DT_FLOAT 1, DT_STRING 7), tensor_shape 2 {dim 2 {size 1}}, string_val 8
//	HParamsPluginData  version 1 (0, the default), experiment 2, session_start_info 3, session_end_info 4
//	Experiment       time_created_secs 3, hparam_infos 4, metric_infos 5
//	HParamInfo       name 1, type 4 (STRING 1, BOOL 2, FLOAT64 3)
//	MetricInfo       name 1 {group 1, tag 2}, dataset_type 5 (TRAINING 1, VALIDATION 2)
//	SessionStartInfo hparams 1 (map<string, Value>: entries {key 1, value 2}), start_time_secs 5
//	SessionEndInfo   status 1 (SUCCESS 1, FAILURE 2), end_time_secs 2
//	Value            number_value 2 (double), string_value 3, bool_value 4
//
// The hparams summaries are the three PyTorch's torch.utils.tensorboard.summary.hparams returns (and
// Lightning's TensorBoardLogger writes into the run itself): the experiment under
// "_hparams_/experiment", the session start under "_hparams_/session_start_info", the end under
// "_hparams_/session_end_info", each with an empty float tensor as TensorBoard's own writer does
// (metadata.NULL_TENSOR).

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

const (
	eventWallTime    protowire.Number = 1
	eventStep        protowire.Number = 2
	eventFileVersion protowire.Number = 3
	eventSummary     protowire.Number = 5
	eventSessionLog  protowire.Number = 7
	sessionLogStatus protowire.Number = 1
	summaryValue     protowire.Number = 1
	valueTag         protowire.Number = 1
	valueSimpleValue protowire.Number = 2
	valueTensor      protowire.Number = 8
	valueMetadata    protowire.Number = 9
	metaPluginData   protowire.Number = 1
	pluginName       protowire.Number = 1
	pluginContent    protowire.Number = 2
	tensorDType      protowire.Number = 1
	tensorShape      protowire.Number = 2
	tensorStringVal  protowire.Number = 8
	shapeDim         protowire.Number = 2
	dimSize          protowire.Number = 1

	sessionLogStart = 1
	dtFloat         = 1
	dtString        = 7
)

// appendBytesField, appendVarintField and appendDoubleField append one field: its tag, then its value.
func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

func appendDoubleField(b []byte, num protowire.Number, v float64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), math.Float64bits(v))
}

// appendEventWith encodes one Event: a file_version, or a Summary of already encoded Summary.Values.
func appendEventWith(b []byte, wall float64, step int64, fileVersion string, values [][]byte) []byte {
	b = appendDoubleField(b, eventWallTime, wall)
	b = appendVarintField(b, eventStep, uint64(step))
	if fileVersion != "" {
		b = appendBytesField(b, eventFileVersion, []byte(fileVersion))
	}
	if len(values) > 0 {
		var sum []byte
		for _, v := range values {
			sum = appendBytesField(sum, summaryValue, v)
		}
		b = appendBytesField(b, eventSummary, sum)
	}
	return b
}

// appendSessionStart encodes Event{wall_time, step, session_log: {status: START}}: TensorBoard's restart
// marker, which drops the run's events at step >= step read before it.
func appendSessionStart(b []byte, wall float64, step int64) []byte {
	b = appendEventWith(b, wall, step, "", nil)
	return appendBytesField(b, eventSessionLog, appendVarintField(nil, sessionLogStatus, sessionLogStart))
}

// appendSimpleValue encodes Summary.Value{tag, simple_value}.
func appendSimpleValue(b []byte, tag string, v float32) []byte {
	b = appendBytesField(b, valueTag, []byte(tag))
	b = protowire.AppendTag(b, valueSimpleValue, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, math.Float32bits(v))
}

// appendPluginValue encodes Summary.Value{tag, metadata: {plugin_data: {plugin, content}}, tensor}.
func appendPluginValue(b []byte, tag, plugin string, content, tensor []byte) []byte {
	pd := appendBytesField(nil, pluginName, []byte(plugin))
	if len(content) > 0 {
		pd = appendBytesField(pd, pluginContent, content)
	}
	b = appendBytesField(b, valueTag, []byte(tag))
	b = appendBytesField(b, valueTensor, tensor)
	return appendBytesField(b, valueMetadata, appendBytesField(nil, metaPluginData, pd))
}

// tensor1D encodes a TensorProto of shape [n] and the given dtype, with string_val entries if any.
func tensor1D(dtype uint64, n int, strs ...string) []byte {
	shape := appendBytesField(nil, shapeDim, appendVarintField(nil, dimSize, uint64(n)))
	t := appendVarintField(nil, tensorDType, dtype)
	t = appendBytesField(t, tensorShape, shape)
	for _, s := range strs {
		t = appendBytesField(t, tensorStringVal, []byte(s))
	}
	return t
}

// textValue is the text plugin's summary (tf.summary.text, SummaryWriter.add_text): a [1] string tensor,
// rendered as Markdown.
func textValue(tag, markdown string) []byte {
	return appendPluginValue(nil, tag, "text", nil, tensor1D(dtString, 1, markdown))
}

// hparam is one hyperparameter value: float64, bool or string.
type hparam struct {
	name  string
	value any
}

// hparamsValues are the experiment and session-start summaries of one run: hparams with their values,
// metrics (scalar tags) with their dataset type.
func hparamsValues(hps []hparam, metrics map[string]int, start float64) [][]byte {
	var exp []byte
	exp = appendDoubleField(exp, 3, start) // time_created_secs
	var ssi []byte
	for _, h := range hps {
		var typ uint64
		var val []byte
		switch v := h.value.(type) {
		case float64:
			typ = 3
			val = appendDoubleField(val, 2, v)
		case bool:
			typ = 2
			val = appendVarintField(val, 4, protowire.EncodeBool(v))
		case string:
			typ = 1
			val = appendBytesField(val, 3, []byte(v))
		default:
			panic(fmt.Sprintf("train: hparam %s has type %T, want float64, bool or string", h.name, h.value))
		}
		var info []byte
		info = appendBytesField(info, 1, []byte(h.name))
		info = appendVarintField(info, 4, typ)
		exp = appendBytesField(exp, 4, info)

		var entry []byte
		entry = appendBytesField(entry, 1, []byte(h.name))
		entry = appendBytesField(entry, 2, val)
		ssi = appendBytesField(ssi, 1, entry)
	}
	tags := make([]string, 0, len(metrics))
	for tag := range metrics {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	for _, tag := range tags {
		var name, info []byte
		name = appendBytesField(name, 2, []byte(tag))
		info = appendBytesField(info, 1, name)
		info = appendVarintField(info, 5, uint64(metrics[tag]))
		exp = appendBytesField(exp, 5, info)
	}
	ssi = appendDoubleField(ssi, 5, start) // start_time_secs
	return [][]byte{
		hparamsValue("_hparams_/experiment", 2, exp),
		hparamsValue("_hparams_/session_start_info", 3, ssi),
	}
}

// sessionEndValue is the hparams session end: status SUCCESS (1) or FAILURE (2).
func sessionEndValue(status int, end float64) []byte {
	var sei []byte
	sei = appendVarintField(sei, 1, uint64(status))
	sei = appendDoubleField(sei, 2, end)
	return hparamsValue("_hparams_/session_end_info", 4, sei)
}

// hparamsValue wraps one HParamsPluginData field (experiment 2, session start 3, end 4) in a summary.
func hparamsValue(tag string, field protowire.Number, msg []byte) []byte {
	content := appendBytesField(nil, field, msg) // version 0 (field 1) is proto3's default: not written
	return appendPluginValue(nil, tag, "hparams", content, tensor1D(dtFloat, 0))
}

// configHParams flattens a config into hyperparameters: dotted keys, numbers as float64, lists as text.
func configHParams(c *Config) ([]hparam, error) {
	flat, err := flattenConfig(c)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(flat))
	for k := range flat {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []hparam
	for _, k := range keys {
		var v any
		switch x := flat[k].(type) {
		case int:
			v = float64(x)
		case float64, bool, string:
			v = x
		case nil:
			v = "null"
		default:
			v = formatValue(x)
		}
		out = append(out, hparam{k, v})
	}
	return out, nil
}

// configMarkdown is the config YAML as a Markdown code block (TensorBoard's text tab renders Markdown).
func configMarkdown(yamlText string) string {
	lines := strings.Split(strings.TrimRight(yamlText, "\n"), "\n")
	return "    " + strings.Join(lines, "\n    ")
}

// LogConfig writes the run's configuration to TensorBoard at step: its YAML as the text summary
// "config", and its values as hparams, with the training and validation losses as metrics.
func (m *MetricsWriter) LogConfig(step int, c *Config) error {
	if m == nil || m.eventsBuf == nil {
		return nil
	}
	var yamlText strings.Builder
	if err := Print(&yamlText, c); err != nil {
		return err
	}
	hps, err := configHParams(c)
	if err != nil {
		return fmt.Errorf("train: log config: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	wall := wallTime(m.now())
	values := append(hparamsValues(hps, map[string]int{"train/loss": 1, "val/loss": 2}, wall), textValue("config", configMarkdown(yamlText.String())))
	return m.writeEvent(appendEventWith(nil, wall, int64(step), "", values))
}

// LogRunEnd writes the hparams session end: success, or failure.
func (m *MetricsWriter) LogRunEnd(step int, success bool) error {
	if m == nil || m.eventsBuf == nil {
		return nil
	}
	status := 2
	if success {
		status = 1
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	wall := wallTime(m.now())
	return m.writeEvent(appendEventWith(nil, wall, int64(step), "", [][]byte{sessionEndValue(status, wall)}))
}
