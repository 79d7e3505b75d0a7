package lerobot

import (
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
)

// table reads whole columns of one parquet file by top-level field name. LeRobot's writers (pyarrow
// through Hugging Face datasets, pandas) store a vector feature as a LIST of floats, in the 3-level form
// (<name> LIST { repeated group list { element } }, the leaf named "element" or "item"), a fixed-size
// list the same way, and an image as a struct {bytes, path}; scalars are plain leaves. table accepts all
// of them, and the 2-level legacy lists, by following a column's single child down to its leaf.
type table struct {
	name string // file, for messages
	f    *parquet.File
}

// openTable opens a parquet file held by r.
func openTable(name string, r io.ReaderAt, size int64) (*table, error) {
	f, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("lerobot: %s: not a readable parquet file: %w", name, err)
	}
	return &table{name: name, f: f}, nil
}

// rows is the number of rows.
func (t *table) rows() int { return int(t.f.NumRows()) }

// has reports whether the file has a top-level column col.
func (t *table) has(col string) bool { return t.f.Root().Column(col) != nil }

// leaf finds the leaf under top-level column col: itself, its "bytes" child (an image struct), or the
// leaf at the end of its chain of single children (a list).
func (t *table) leaf(col string) (*parquet.Column, error) {
	c := t.f.Root().Column(col)
	if c == nil {
		return nil, fmt.Errorf("lerobot: %s: no column %q", t.name, col)
	}
	for !c.Leaf() {
		if b := c.Column("bytes"); b != nil {
			c = b
			continue
		}
		kids := c.Columns()
		if len(kids) != 1 {
			return nil, fmt.Errorf("lerobot: %s: column %q is a group of %d fields, want a value, a list or an image struct {bytes, path}", t.name, col, len(kids))
		}
		c = kids[0]
	}
	return c, nil
}

// each calls fn with every value of column col in order, and row = the index of the row it belongs to.
func (t *table) each(col string, fn func(row int, v parquet.Value) error) error {
	c, err := t.leaf(col)
	if err != nil {
		return err
	}
	pages := c.Pages()
	defer pages.Close()
	buf := make([]parquet.Value, 1024)
	row := -1
	for {
		p, err := pages.ReadPage()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("lerobot: %s: column %q: %w", t.name, col, err)
		}
		vr := p.Values()
		for {
			n, err := vr.ReadValues(buf)
			for _, v := range buf[:n] {
				if v.RepetitionLevel() == 0 {
					row++
				}
				if ferr := fn(row, v); ferr != nil {
					parquet.Release(p)
					return ferr
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				parquet.Release(p)
				return fmt.Errorf("lerobot: %s: column %q: %w", t.name, col, err)
			}
		}
		parquet.Release(p)
	}
	if row+1 != t.rows() {
		return fmt.Errorf("lerobot: %s: column %q has %d rows, the file %d", t.name, col, row+1, t.rows())
	}
	return nil
}

// errNull marks a null where a value is needed.
var errNull = errors.New("null value")

// floats reads a float column (scalar or list) as float64: vals holds the rows back to back and row i is
// vals[off[i]:off[i+1]]. A null, or a non-float column, is an error naming the file, column and row.
func (t *table) floats(col string) (vals []float64, off []int, err error) {
	off = make([]int, 1, t.rows()+1)
	err = t.each(col, func(row int, v parquet.Value) error {
		for len(off) < row+1 {
			off = append(off, len(vals))
		}
		switch {
		case v.IsNull():
			return fmt.Errorf("lerobot: %s: column %q row %d: %w, want a number", t.name, col, row, errNull)
		case v.Kind() == parquet.Float:
			vals = append(vals, float64(v.Float()))
		case v.Kind() == parquet.Double:
			vals = append(vals, v.Double())
		default:
			return fmt.Errorf("lerobot: %s: column %q holds %v values, want float or double", t.name, col, v.Kind())
		}
		return nil
	})
	for len(off) < t.rows()+1 {
		off = append(off, len(vals))
	}
	return vals, off, err
}

// ints reads a scalar integer column.
func (t *table) ints(col string) ([]int64, error) {
	out := make([]int64, 0, t.rows())
	err := t.each(col, func(row int, v parquet.Value) error {
		if row != len(out) {
			return fmt.Errorf("lerobot: %s: column %q row %d: a list, want one integer per row", t.name, col, row)
		}
		switch {
		case v.IsNull():
			return fmt.Errorf("lerobot: %s: column %q row %d: %w, want an integer", t.name, col, row, errNull)
		case v.Kind() == parquet.Int64:
			out = append(out, v.Int64())
		case v.Kind() == parquet.Int32:
			out = append(out, int64(v.Int32()))
		default:
			return fmt.Errorf("lerobot: %s: column %q holds %v values, want int32 or int64", t.name, col, v.Kind())
		}
		return nil
	})
	return out, err
}

// scalars reads a scalar float column.
func (t *table) scalars(col string) ([]float64, error) {
	vals, off, err := t.floats(col)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(off); i++ {
		if off[i+1]-off[i] != 1 {
			return nil, fmt.Errorf("lerobot: %s: column %q row %d: %d values, want one", t.name, col, i, off[i+1]-off[i])
		}
	}
	return vals, nil
}

// blobs reads a byte-array column (an image struct's bytes, or strings) per row; a list column gives
// its elements in order, flattened, with off as in floats.
func (t *table) blobs(col string) (vals [][]byte, off []int, err error) {
	off = make([]int, 1, t.rows()+1)
	err = t.each(col, func(row int, v parquet.Value) error {
		for len(off) < row+1 {
			off = append(off, len(vals))
		}
		switch {
		case v.IsNull():
			return nil // an empty list, or an image stored by path only (caught by the caller)
		case v.Kind() == parquet.ByteArray:
			vals = append(vals, append([]byte(nil), v.ByteArray()...))
		default:
			return fmt.Errorf("lerobot: %s: column %q holds %v values, want bytes", t.name, col, v.Kind())
		}
		return nil
	})
	for len(off) < t.rows()+1 {
		off = append(off, len(vals))
	}
	return vals, off, err
}
