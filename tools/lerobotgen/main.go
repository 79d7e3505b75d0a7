// Command lerobotgen writes the LeRobot test datasets under data/lerobot/testdata with Apache Arrow's
// parquet writer (github.com/apache/arrow-go, a port of the C++ writer behind pyarrow, which LeRobot
// uses), so that the reader (parquet-go) is tested on files another implementation wrote. Videos come
// from FFmpeg as in make-demo-data. A dev tool with a module of its own: never a dependency of the
// product.
//
//	cd tools/lerobotgen && go run . ../../data/lerobot/testdata
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/vjepa-vk/vjepa-vk/data/lerobot"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: lerobotgen OUT_DIR")
		os.Exit(2)
	}
	out := os.Args[1]
	for _, c := range []struct {
		name string
		cfg  lerobot.DemoConfig
		w    arrowTables
	}{
		// v2.1 as pyarrow < 13 wrote lists (element "item"), H.264 video and JPEG image features.
		{"v21_h264", lerobot.DemoConfig{Version: "v2.1", Episodes: 3, Steps: 24, Seed: 2, Codec: "h264",
			Width: 160, Height: 90, ImageCamera: true}, arrowTables{element: "item"}},
		// v3.0 as Hugging Face datasets writes vectors (fixed-size lists, element "element"), AV1 video.
		{"v30_av1", lerobot.DemoConfig{Version: "v3.0", Episodes: 4, Steps: 24, Seed: 3, Codec: "av1",
			Width: 160, Height: 90, EpisodesPerFile: 2}, arrowTables{element: "element", fixed: true}},
	} {
		c.cfg.Tables = c.w
		dir := filepath.Join(out, c.name)
		if err := os.RemoveAll(dir); err != nil {
			fail(err)
		}
		if err := lerobot.WriteDemo(dir, c.cfg); err != nil {
			fail(err)
		}
		fmt.Println("wrote", dir)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "lerobotgen:", err)
	os.Exit(1)
}

// arrowTables implements lerobot.TableWriter with pqarrow.
type arrowTables struct {
	element string // list element name
	fixed   bool   // vectors as fixed-size lists
}

func (a arrowTables) vec(n int) arrow.DataType {
	f := arrow.Field{Name: a.element, Type: arrow.PrimitiveTypes.Float32, Nullable: true}
	if a.fixed {
		return arrow.FixedSizeListOfField(int32(n), f)
	}
	return arrow.ListOfField(f)
}

func (a arrowTables) WriteFrames(path string, rows []lerobot.FrameRow) error {
	fields := []arrow.Field{
		{Name: "observation.state", Type: a.vec(6), Nullable: true},
		{Name: "observation.ee_pose", Type: a.vec(7), Nullable: true},
		{Name: "action", Type: a.vec(4), Nullable: true},
	}
	image := rows[0].Wrist != nil
	imgType := arrow.StructOf(arrow.Field{Name: "bytes", Type: arrow.BinaryTypes.Binary, Nullable: true},
		arrow.Field{Name: "path", Type: arrow.BinaryTypes.String, Nullable: true})
	if image {
		fields = append(fields, arrow.Field{Name: lerobot.DemoImageKey, Type: imgType, Nullable: true})
	}
	fields = append(fields,
		arrow.Field{Name: "timestamp", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		arrow.Field{Name: "frame_index", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		arrow.Field{Name: "episode_index", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		arrow.Field{Name: "index", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		arrow.Field{Name: "task_index", Type: arrow.PrimitiveTypes.Int64, Nullable: true})
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema(fields, nil))
	defer b.Release()
	vec := func(i int, v []float32) {
		switch lb := b.Field(i).(type) {
		case *array.ListBuilder:
			lb.Append(true)
			lb.ValueBuilder().(*array.Float32Builder).AppendValues(v, nil)
		case *array.FixedSizeListBuilder:
			lb.Append(true)
			lb.ValueBuilder().(*array.Float32Builder).AppendValues(v, nil)
		}
	}
	for _, r := range rows {
		vec(0, r.State)
		vec(1, r.EEPose)
		vec(2, r.Action)
		i := 3
		if image {
			sb := b.Field(3).(*array.StructBuilder)
			sb.Append(true)
			sb.FieldBuilder(0).(*array.BinaryBuilder).Append(r.Wrist.Bytes)
			sb.FieldBuilder(1).(*array.StringBuilder).Append(r.Wrist.Path)
			i = 4
		}
		b.Field(i).(*array.Float32Builder).Append(r.Timestamp)
		b.Field(i + 1).(*array.Int64Builder).Append(r.FrameIndex)
		b.Field(i + 2).(*array.Int64Builder).Append(r.EpisodeIndex)
		b.Field(i + 3).(*array.Int64Builder).Append(r.Index)
		b.Field(i + 4).(*array.Int64Builder).Append(r.TaskIndex)
	}
	return write(path, b)
}

func (a arrowTables) WriteEpisodes(path string, rows []lerobot.EpisodeRow) error {
	v := "videos/" + lerobot.DemoVideoKey + "/"
	i64 := arrow.PrimitiveTypes.Int64
	fields := []arrow.Field{
		{Name: "episode_index", Type: i64, Nullable: true},
		{Name: "tasks", Type: arrow.ListOfField(arrow.Field{Name: a.element, Type: arrow.BinaryTypes.String, Nullable: true}), Nullable: true},
		{Name: "length", Type: i64, Nullable: true},
		{Name: "data/chunk_index", Type: i64, Nullable: true},
		{Name: "data/file_index", Type: i64, Nullable: true},
		{Name: "dataset_from_index", Type: i64, Nullable: true},
		{Name: "dataset_to_index", Type: i64, Nullable: true},
		{Name: v + "chunk_index", Type: i64, Nullable: true},
		{Name: v + "file_index", Type: i64, Nullable: true},
		{Name: v + "from_timestamp", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: v + "to_timestamp", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "meta/episodes/chunk_index", Type: i64, Nullable: true},
		{Name: "meta/episodes/file_index", Type: i64, Nullable: true},
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema(fields, nil))
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.Int64Builder).Append(r.EpisodeIndex)
		lb := b.Field(1).(*array.ListBuilder)
		lb.Append(true)
		for _, t := range r.Tasks {
			lb.ValueBuilder().(*array.StringBuilder).Append(t)
		}
		for i, x := range []int64{r.Length, r.DataChunk, r.DataFile, r.From, r.To, r.VideoChunk, r.VideoFile} {
			b.Field(2 + i).(*array.Int64Builder).Append(x)
		}
		b.Field(9).(*array.Float64Builder).Append(r.VideoFrom)
		b.Field(10).(*array.Float64Builder).Append(r.VideoTo)
		b.Field(11).(*array.Int64Builder).Append(r.MetaChunk)
		b.Field(12).(*array.Int64Builder).Append(r.MetaFile)
	}
	return write(path, b)
}

func (a arrowTables) WriteTasks(path string, rows []lerobot.TaskRow) error {
	fields := []arrow.Field{{Name: "task_index", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "__index_level_0__", Type: arrow.BinaryTypes.String, Nullable: true}} // pandas' unnamed index
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema(fields, nil))
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.Int64Builder).Append(r.TaskIndex)
		b.Field(1).(*array.StringBuilder).Append(r.Task)
	}
	return write(path, b)
}

// write stores the builder's rows as one parquet file with pyarrow's defaults: snappy, dictionary
// encoding, data page v1.
func write(path string, b *array.RecordBuilder) error {
	rec := b.NewRecordBatch()
	defer rec.Release()
	tbl := array.NewTableFromRecords(rec.Schema(), []arrow.RecordBatch{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDictionaryDefault(true))
	if err := pqarrow.WriteTable(tbl, &buf, 1<<20, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
