package data

import (
	"context"
	"errors"
	"fmt"
)

// NthEpisode reads record n (0-based, in file order across the split's shards) of an RLDS dataset as an
// episode: the planner's --episode SRC picks an observation, a goal and the states this way. Corrupt
// records count as records (they are skipped, and n past them names the next one).
func NthEpisode(ctx context.Context, src Source, split string, n int) (*Episode, error) {
	if n < 0 {
		return nil, fmt.Errorf("data: episode %d of %s: want an index >= 0", n, src)
	}
	shards, err := FindShards(ctx, src, split)
	if err != nil {
		return nil, err
	}
	seen := 0
	var found []byte
	errFound := errors.New("found")
	for _, sh := range shards {
		_, err := EachRecord(ctx, src, sh, 0, func(record int, data []byte) error {
			if seen == n {
				found = data
				return errFound
			}
			seen++
			return nil
		}, func(*CorruptRecordError) { seen++ })
		if err == errFound {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if found == nil {
		return nil, fmt.Errorf("data: episode %d of %s: the %s split has %d records", n, src, split, seen)
	}
	ex, err := ParseExample(found)
	if err != nil {
		return nil, fmt.Errorf("data: episode %d of %s: %w", n, src, err)
	}
	return NewEpisode(ex)
}
