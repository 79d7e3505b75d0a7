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

// NthFormatEpisode is episode n of f counting in shard order, each shard's records in file order (as
// NthEpisode counts RLDS records): for inference on one step of any format. A malformed episode n is
// its error.
func NthFormatEpisode(ctx context.Context, f Format, n int) (ClipEpisode, error) {
	if n < 0 {
		return nil, fmt.Errorf("data: episode %d of %s: want an index >= 0", n, f)
	}
	seen := 0
	var found ClipEpisode
	var foundErr error
	errFound := errors.New("found")
	for _, sh := range f.Shards() {
		if sh.Episodes >= 0 && int64(seen)+sh.Episodes <= int64(n) {
			seen += int(sh.Episodes) // no need to read a shard before the one that holds it
			continue
		}
		err := f.EachEpisode(ctx, sh, nil, func(_ int, ep ClipEpisode) error {
			if seen == n {
				found = ep
				return errFound
			}
			seen++
			return nil
		}, func(record int, err error) {
			if seen == n {
				foundErr = fmt.Errorf("data: episode %d of %s (shard %s record %d): %w", n, f, sh.Name, record, err)
			}
			seen++
		}, func(*CorruptRecordError) { seen++ })
		switch {
		case foundErr != nil:
			return nil, foundErr
		case err == errFound:
			return found, nil
		case err != nil:
			return nil, err
		}
	}
	return nil, fmt.Errorf("data: episode %d of %s: it has %d episodes", n, f, seen)
}
