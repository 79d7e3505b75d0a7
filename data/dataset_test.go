package data

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

const sampleDir = "../testdata/droid_sample"

// datasetInfoJSON writes a dataset_info.json the way TFDS does (int64 as strings).
func datasetInfoJSON(name string, shardLengths []int, template string) []byte {
	lens := make([]string, len(shardLengths))
	for i, n := range shardLengths {
		lens[i] = fmt.Sprint(n)
	}
	sp := map[string]any{"name": "train", "numBytes": "123", "shardLengths": lens}
	if template != "" {
		sp["filepathTemplate"] = template
	}
	b, _ := json.Marshal(map[string]any{
		"name": name, "version": "1.0.1", "fileFormat": "tfrecord", "moduleName": "x",
		"releaseNotes": map[string]string{"1.0.1": "notes"}, "splits": []any{sp},
	})
	return b
}

func TestDatasetInfoShards(t *testing.T) {
	const tmpl = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
	cases := []struct {
		name     string
		info     []byte
		n        int
		first    string
		last     string
		episodes int64
	}{
		{"droid=1.0.1", datasetInfoJSON("droid_101", repeat(47, 2048), tmpl), 2048,
			"droid_101-train.tfrecord-00000-of-02048", "droid_101-train.tfrecord-02047-of-02048", 47 * 2048},
		{"droid=1.0.0", datasetInfoJSON("r2d2_faceblur", repeat(45, 2048), tmpl), 2048,
			"r2d2_faceblur-train.tfrecord-00000-of-02048", "r2d2_faceblur-train.tfrecord-02047-of-02048", 45 * 2048},
		{"droid_100", datasetInfoJSON("r2d2_faceblur", repeat(3, 31), ""), 31,
			"r2d2_faceblur-train.tfrecord-00000-of-00031", "r2d2_faceblur-train.tfrecord-00030-of-00031", 93},
		{"template=index", datasetInfoJSON("x", repeat(1, 3), "{DATASET}/{SPLIT}-{SHARD_INDEX}-{NUM_SHARDS}.{FILEFORMAT}"), 3,
			"x/train-00000-00003.tfrecord", "x/train-00002-00003.tfrecord", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info, err := ParseDatasetInfo(tc.info)
			if err != nil {
				t.Fatal(err)
			}
			shards, err := info.Shards("train")
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			for i, s := range shards {
				total += s.Episodes
				if s.Index != i {
					t.Fatalf("shard %d has index %d", i, s.Index)
				}
			}
			if len(shards) != tc.n || shards[0].Name != tc.first || shards[len(shards)-1].Name != tc.last || total != tc.episodes {
				t.Fatalf("%d shards %q … %q with %d episodes, want %d %q … %q with %d",
					len(shards), shards[0].Name, shards[len(shards)-1].Name, total, tc.n, tc.first, tc.last, tc.episodes)
			}
			if _, err := info.Shards("validation"); err == nil || !strings.Contains(err.Error(), "no split") {
				t.Fatalf("missing split: %v", err)
			}
			// MarshalDatasetInfo round-trips.
			b, err := MarshalDatasetInfo(info)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseDatasetInfo(b)
			if err != nil || !reflect.DeepEqual(again.Splits[0].ShardLengths, info.Splits[0].ShardLengths) {
				t.Fatalf("round trip: %v, %v", err, again)
			}
		})
	}
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestDatasetInfoErrors(t *testing.T) {
	for _, tc := range []struct{ name, json string }{
		{"err=syntax", `{"name":`},
		{"err=no-name", `{"splits":[]}`},
		{"err=bad-length", `{"name":"x","splits":[{"name":"train","shardLengths":["12a"]}]}`},
		{"err=negative-length", `{"name":"x","splits":[{"name":"train","shardLengths":["-1"]}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseDatasetInfo([]byte(tc.json)); err == nil {
				t.Fatalf("ParseDatasetInfo(%s) gave no error", tc.json)
			}
		})
	}
}

func TestFindShards(t *testing.T) {
	ctx := context.Background()
	t.Run("source=info", func(t *testing.T) {
		src := &FSSource{FS: fstest.MapFS{DatasetInfoFile: {Data: datasetInfoJSON("droid_101", repeat(2, 4), "")}}, Name: "mem"}
		shards, err := FindShards(ctx, src, "train")
		if err != nil || len(shards) != 4 || shards[3].Name != "droid_101-train.tfrecord-00003-of-00004" {
			t.Fatalf("%v, %v", shards, err)
		}
	})
	t.Run("source=listing", func(t *testing.T) {
		src := &FSSource{FS: fstest.MapFS{
			"foo-train.tfrecord-00001-of-00002": {}, "foo-train.tfrecord-00000-of-00002": {},
			"foo-val.tfrecord-00000-of-00001": {}, "features.json": {}, "sub/x-train.tfrecord-1": {},
		}, Name: "mem"}
		shards, err := FindShards(ctx, src, "train")
		if err != nil {
			t.Fatal(err)
		}
		want := []Shard{{"foo-train.tfrecord-00000-of-00002", 0, -1}, {"foo-train.tfrecord-00001-of-00002", 1, -1}}
		if !reflect.DeepEqual(shards, want) {
			t.Fatalf("shards %v, want %v", shards, want)
		}
	})
	t.Run("source=empty", func(t *testing.T) {
		if _, err := FindShards(ctx, &FSSource{FS: fstest.MapFS{}, Name: "mem"}, "train"); err == nil {
			t.Fatal("an empty directory gave shards")
		}
	})
	t.Run("source=sample", func(t *testing.T) {
		shards, err := FindShards(ctx, NewDirSource(sampleDir), "train")
		if err != nil || len(shards) != 2 || shards[1].Name != "droid_demo-train.tfrecord-00001-of-00002" || shards[0].Episodes != 3 {
			t.Fatalf("%v, %v", shards, err)
		}
	})
}

// TestAssignShards: per epoch, the workers of all ranks together take every unit exactly once; the
// assignment is a pure function of its arguments and changes between epochs.
func TestAssignShards(t *testing.T) {
	for _, tc := range []struct{ shards, world, workers int }{
		{2048, 4, 8}, {31, 1, 2}, {2, 1, 2}, {2, 1, 4}, {3, 2, 3}, {1, 1, 1}, {5, 3, 1},
	} {
		t.Run(fmt.Sprintf("shards=%d,world=%d,workers=%d", tc.shards, tc.world, tc.workers), func(t *testing.T) {
			shards := make([]Shard, tc.shards)
			for i := range shards {
				shards[i] = Shard{Name: fmt.Sprint(i), Index: i}
			}
			orders := map[string]bool{}
			for epoch := range 3 {
				seen := map[[2]int]int{}
				var order []string
				parts := 0
				for r := range tc.world {
					for w := range tc.workers {
						mine := AssignShards(shards, 42, epoch, r, tc.world, w, tc.workers)
						if !reflect.DeepEqual(mine, AssignShards(shards, 42, epoch, r, tc.world, w, tc.workers)) {
							t.Fatal("not deterministic")
						}
						if len(mine) == 0 {
							t.Fatalf("epoch %d rank %d worker %d got no work", epoch, r, w)
						}
						for _, u := range mine {
							seen[[2]int{u.Index, u.Part}]++
							parts = u.Parts
							order = append(order, fmt.Sprintf("%d.%d", u.Index, u.Part))
						}
					}
				}
				if len(seen) != tc.shards*parts {
					t.Fatalf("epoch %d: %d distinct units, want %d", epoch, len(seen), tc.shards*parts)
				}
				for u, n := range seen {
					if n != 1 {
						t.Fatalf("epoch %d: unit %v taken %d times", epoch, u, n)
					}
				}
				orders[strings.Join(order, ",")] = true
			}
			if tc.shards*tc.world*tc.workers > 8 && len(orders) < 2 {
				t.Fatalf("the same assignment in every epoch")
			}
		})
	}
}
