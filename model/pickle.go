package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// A restricted unpickler for what torch.save writes (spec §9.4).
//
// Why not github.com/nlpodyssey/gopickle (in go.mod): its torch loader reads every storage into memory
// while unpickling (12 GB of RAM for the AC checkpoint, where we want to stream tensor by tensor), it
// allocates lengths read from the file before checking them against the input (a hostile BINBYTES or
// storage numel is an out-of-memory), and it resolves globals through a general class registry. This file is
// smaller than that machinery and safer: it never calls anything, every GLOBAL it does not know becomes an
// inert opaque value, only collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter,
// the torch.*Storage types and _codecs.encode are interpreted, and every allocation is bounded by the input
// size (lengths are checked against the remaining bytes; the stack and memo are capped).

// Pickle values are represented as:
//
//	None → nil, bool, int64, float64, str → string, bytes → []byte,
//	tuple → pyTuple, list → *pyList, dict/OrderedDict → *pyDict, GLOBAL → *pyGlobal,
//	persistent storage id → *pyStorage, _rebuild_tensor_v2(...) → *pyTensor,
//	anything else that was called or built → *pyObject (inert).
type (
	pyTuple []any
	pyList  struct{ items []any }
	pyDict  struct {
		keys, vals []any
		index      map[any]int // for hashable keys (string, int64, float64, bool, nil)
	}
	pyGlobal  struct{ module, name string }
	pyObject  struct{ global *pyGlobal }
	pyStorage struct {
		dtype    DType
		key      string
		location string
		numel    int64
	}
	pyTensor struct {
		storage *pyStorage
		offset  int64
		shape   []int64
		stride  []int64
	}
)

func newPyDict() *pyDict { return &pyDict{index: map[any]int{}} }

func (d *pyDict) set(k, v any) {
	switch k.(type) {
	case string, int64, float64, bool, nil:
		if i, ok := d.index[k]; ok {
			d.vals[i] = v
			return
		}
		d.index[k] = len(d.keys)
	}
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
}

func (d *pyDict) get(k string) (any, bool) {
	i, ok := d.index[k]
	if !ok {
		return nil, false
	}
	return d.vals[i], true
}

// Limits on hostile input. Real checkpoints are far below them: the AC ViT-g pickle has a few thousand
// stack items and memo entries.
const (
	maxPickleItems = 1 << 22 // values created + memo entries
	maxPickleMarks = 1 << 16 // nested MARKs
)

// PickleError is malformed or unsupported pickle input, with the byte offset of the opcode.
type PickleError struct {
	Offset int
	Op     byte
	Msg    string
}

func (e *PickleError) Error() string {
	return fmt.Sprintf("pickle offset %d (opcode 0x%02x %s): %s", e.Offset, e.Op, opName(e.Op), e.Msg)
}

var errStop = errors.New("stop")

type unpickler struct {
	data  []byte
	pos   int
	op    int // offset of the current opcode
	stack []any
	marks []int
	memo  map[uint32]any
	// pushes counts every value created; with the input length it bounds all allocation, since
	// containers only ever move values off the stack.
	pushes int
}

// unpickle decodes one pickle (protocol 0–5 opcodes that torch.save uses, plus cheap neighbours).
func unpickle(data []byte) (any, error) {
	u := &unpickler{data: data, memo: map[uint32]any{}}
	for {
		if u.pos >= len(u.data) {
			return nil, &PickleError{Offset: u.pos, Msg: "unexpected end of data, want STOP"}
		}
		u.op = u.pos
		op := u.data[u.pos]
		u.pos++
		err := u.step(op)
		if err == errStop {
			if len(u.stack) != 1 {
				return nil, &PickleError{Offset: u.op, Op: op, Msg: fmt.Sprintf("stack holds %d items at STOP, want 1", len(u.stack))}
			}
			return u.stack[0], nil
		}
		if err != nil {
			var pe *PickleError
			if errors.As(err, &pe) {
				return nil, err
			}
			return nil, &PickleError{Offset: u.op, Op: op, Msg: err.Error()}
		}
		if u.pushes+len(u.memo) > maxPickleItems {
			return nil, &PickleError{Offset: u.op, Op: op, Msg: fmt.Sprintf("more than %d values and memo entries", maxPickleItems)}
		}
	}
}

func (u *unpickler) read(n uint64) ([]byte, error) {
	if n > uint64(len(u.data)-u.pos) {
		return nil, fmt.Errorf("needs %d bytes, %d left", n, len(u.data)-u.pos)
	}
	b := u.data[u.pos : u.pos+int(n)]
	u.pos += int(n)
	return b, nil
}

func (u *unpickler) readUint(n int) (uint64, error) {
	b, err := u.read(uint64(n))
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

func (u *unpickler) readLine() (string, error) {
	i := bytes.IndexByte(u.data[u.pos:min(len(u.data), u.pos+1024)], '\n')
	if i < 0 {
		return "", errors.New("no newline within 1024 bytes")
	}
	s := string(u.data[u.pos : u.pos+i])
	u.pos += i + 1
	return s, nil
}

func (u *unpickler) push(v any) {
	u.pushes++
	u.stack = append(u.stack, v)
}

func (u *unpickler) pop() (any, error) {
	if len(u.stack) == 0 || (len(u.marks) > 0 && len(u.stack) <= u.marks[len(u.marks)-1]) {
		return nil, errors.New("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) == 0 || (len(u.marks) > 0 && len(u.stack) <= u.marks[len(u.marks)-1]) {
		return nil, errors.New("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark pops everything above the last MARK and the mark itself.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, errors.New("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

func (u *unpickler) popN(n int) ([]any, error) {
	floor := 0
	if len(u.marks) > 0 {
		floor = u.marks[len(u.marks)-1]
	}
	if len(u.stack)-floor < n {
		return nil, errors.New("stack underflow")
	}
	items := append([]any(nil), u.stack[len(u.stack)-n:]...)
	u.stack = u.stack[:len(u.stack)-n]
	return items, nil
}

func (u *unpickler) str(b []byte) (string, error) {
	if !utf8.Valid(b) {
		return "", errors.New("invalid utf-8 in unicode string")
	}
	return string(b), nil
}

func (u *unpickler) step(op byte) error {
	switch op {
	case 0x80: // PROTO
		v, err := u.readUint(1)
		if err != nil {
			return err
		}
		if v > 5 {
			return fmt.Errorf("protocol %d, want at most 5", v)
		}
	case 0x95: // FRAME: framing is only a hint for buffered readers
		_, err := u.readUint(8)
		return err
	case '.': // STOP
		return errStop
	case '(': // MARK
		if len(u.marks) >= maxPickleMarks {
			return fmt.Errorf("more than %d nested MARKs", maxPickleMarks)
		}
		u.marks = append(u.marks, len(u.stack))
	case '0': // POP
		if len(u.marks) > 0 && len(u.stack) == u.marks[len(u.marks)-1] {
			_, err := u.popMark()
			return err
		}
		_, err := u.pop()
		return err
	case '1': // POP_MARK
		_, err := u.popMark()
		return err
	case '2': // DUP
		v, err := u.top()
		if err != nil {
			return err
		}
		u.push(v)

	case 'N':
		u.push(nil)
	case 0x88: // NEWTRUE
		u.push(true)
	case 0x89: // NEWFALSE
		u.push(false)
	case 'K', 'M': // BININT1, BININT2
		n := 1
		if op == 'M' {
			n = 2
		}
		v, err := u.readUint(n)
		if err != nil {
			return err
		}
		u.push(int64(v))
	case 'J': // BININT
		v, err := u.readUint(4)
		if err != nil {
			return err
		}
		u.push(int64(int32(uint32(v))))
	case 0x8a, 0x8b: // LONG1, LONG4: little-endian two's complement
		var n uint64
		var err error
		if op == 0x8a {
			n, err = u.readUint(1)
		} else {
			n, err = u.readUint(4)
		}
		if err != nil {
			return err
		}
		b, err := u.read(n)
		if err != nil {
			return err
		}
		v, err := decodeLong(b)
		if err != nil {
			return err
		}
		u.push(v)
	case 'G': // BINFLOAT, big-endian
		b, err := u.read(8)
		if err != nil {
			return err
		}
		u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))

	case 'X', 0x8c, 0x8d, 'T', 'U': // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8, BINSTRING, SHORT_BINSTRING
		width := 4
		switch op {
		case 0x8c, 'U':
			width = 1
		case 0x8d:
			width = 8
		}
		n, err := u.readUint(width)
		if err != nil {
			return err
		}
		b, err := u.read(n)
		if err != nil {
			return err
		}
		if op == 'T' || op == 'U' { // py2 str: bytes, decoded as latin-1 like Python 3 does by default for torch
			r := make([]rune, len(b))
			for i, c := range b {
				r[i] = rune(c)
			}
			u.push(string(r))
			return nil
		}
		s, err := u.str(b)
		if err != nil {
			return err
		}
		u.push(s)
	case 'B', 'C', 0x8e: // BINBYTES, SHORT_BINBYTES, BINBYTES8
		width := 4
		switch op {
		case 'C':
			width = 1
		case 0x8e:
			width = 8
		}
		n, err := u.readUint(width)
		if err != nil {
			return err
		}
		b, err := u.read(n)
		if err != nil {
			return err
		}
		u.push(append([]byte(nil), b...))

	case ')': // EMPTY_TUPLE
		u.push(pyTuple{})
	case 't': // TUPLE
		items, err := u.popMark()
		if err != nil {
			return err
		}
		u.push(pyTuple(items))
	case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
		items, err := u.popN(int(op-0x85) + 1)
		if err != nil {
			return err
		}
		u.push(pyTuple(items))
	case ']': // EMPTY_LIST
		u.push(&pyList{})
	case 'l': // LIST
		items, err := u.popMark()
		if err != nil {
			return err
		}
		u.push(&pyList{items: items})
	case 'a', 'e': // APPEND, APPENDS
		var items []any
		var err error
		if op == 'a' {
			items, err = u.popN(1)
		} else {
			items, err = u.popMark()
		}
		if err != nil {
			return err
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		l, ok := t.(*pyList)
		if !ok {
			return fmt.Errorf("append to %s, want a list", pyTypeName(t))
		}
		l.items = append(l.items, items...)
	case '}': // EMPTY_DICT
		u.push(newPyDict())
	case 'd': // DICT
		items, err := u.popMark()
		if err != nil {
			return err
		}
		d := newPyDict()
		if err := setItems(d, items); err != nil {
			return err
		}
		u.push(d)
	case 's', 'u': // SETITEM, SETITEMS
		var items []any
		var err error
		if op == 's' {
			items, err = u.popN(2)
		} else {
			items, err = u.popMark()
		}
		if err != nil {
			return err
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		d, ok := t.(*pyDict)
		if !ok {
			return fmt.Errorf("setitem on %s, want a dict", pyTypeName(t))
		}
		return setItems(d, items)

	case 'c': // GLOBAL "module\nname\n"
		module, err := u.readLine()
		if err != nil {
			return err
		}
		name, err := u.readLine()
		if err != nil {
			return err
		}
		u.push(&pyGlobal{module: module, name: name})
	case 0x93: // STACK_GLOBAL
		items, err := u.popN(2)
		if err != nil {
			return err
		}
		module, ok1 := items[0].(string)
		name, ok2 := items[1].(string)
		if !ok1 || !ok2 {
			return errors.New("STACK_GLOBAL wants two strings")
		}
		u.push(&pyGlobal{module: module, name: name})
	case 'R', 0x81: // REDUCE callable(args), NEWOBJ cls.__new__(cls, *args)
		items, err := u.popN(2)
		if err != nil {
			return err
		}
		g, ok := items[0].(*pyGlobal)
		args, ok2 := items[1].(pyTuple)
		if !ok || !ok2 {
			return fmt.Errorf("call of %s with %s, want a global and a tuple", pyTypeName(items[0]), pyTypeName(items[1]))
		}
		v, err := callGlobal(g, args)
		if err != nil {
			return err
		}
		u.push(v)
	case 'b': // BUILD: only the OrderedDict _metadata state and opaque objects, whose state is ignored
		items, err := u.popN(1)
		if err != nil {
			return err
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		switch t.(type) {
		case *pyDict, *pyObject:
		default:
			return fmt.Errorf("BUILD with %s on %s, want an OrderedDict or an opaque object", pyTypeName(items[0]), pyTypeName(t))
		}
	case 'Q': // BINPERSID
		pid, err := u.pop()
		if err != nil {
			return err
		}
		s, err := persistentStorage(pid)
		if err != nil {
			return err
		}
		u.push(s)

	case 'h', 'j': // BINGET, LONG_BINGET
		n := 1
		if op == 'j' {
			n = 4
		}
		i, err := u.readUint(n)
		if err != nil {
			return err
		}
		v, ok := u.memo[uint32(i)]
		if !ok {
			return fmt.Errorf("memo %d is not set", i)
		}
		u.push(v)
	case 'q', 'r': // BINPUT, LONG_BINPUT
		n := 1
		if op == 'r' {
			n = 4
		}
		i, err := u.readUint(n)
		if err != nil {
			return err
		}
		v, err := u.top()
		if err != nil {
			return err
		}
		u.memo[uint32(i)] = v
	case 0x94: // MEMOIZE
		v, err := u.top()
		if err != nil {
			return err
		}
		u.memo[uint32(len(u.memo))] = v
	default:
		return &PickleError{Offset: u.op, Op: op, Msg: "unsupported opcode"}
	}
	return nil
}

func setItems(d *pyDict, items []any) error {
	if len(items)%2 != 0 {
		return fmt.Errorf("%d items for key/value pairs", len(items))
	}
	for i := 0; i < len(items); i += 2 {
		d.set(items[i], items[i+1])
	}
	return nil
}

// decodeLong reads a little-endian two's complement integer, which must fit in int64.
func decodeLong(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if len(b) > 8 {
		// Allow sign-extension bytes beyond 8 (Python writes 9 bytes for 2^63-1 < v < 2^64).
		ext := byte(0)
		if b[7]&0x80 != 0 {
			ext = 0xff
		}
		for _, c := range b[8:] {
			if c != ext {
				return 0, fmt.Errorf("%d-byte integer does not fit in int64", len(b))
			}
		}
		b = b[:8]
	}
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	if b[len(b)-1]&0x80 != 0 && len(b) < 8 {
		v |= ^uint64(0) << (8 * len(b))
	}
	return int64(v), nil
}

// torchStorageTypes maps the storage classes named in a persistent id to element types.
var torchStorageTypes = map[string]DType{
	"DoubleStorage": DTypeF64, "FloatStorage": DTypeF32, "HalfStorage": DTypeF16, "BFloat16Storage": DTypeBF16,
	"LongStorage": DTypeI64, "IntStorage": DTypeI32, "ShortStorage": DTypeI16, "CharStorage": DTypeI8,
	"ByteStorage": DTypeU8, "BoolStorage": DTypeBool,
}

// persistentStorage interprets a BINPERSID id: ('storage', torch.<T>Storage, key, location, numel).
func persistentStorage(pid any) (*pyStorage, error) {
	t, ok := pid.(pyTuple)
	if !ok || len(t) != 5 {
		return nil, fmt.Errorf("persistent id %s, want a 5-tuple ('storage', type, key, location, numel)", pyTypeName(pid))
	}
	if s, _ := t[0].(string); s != "storage" {
		return nil, fmt.Errorf("persistent id kind %v, want 'storage'", t[0])
	}
	g, ok := t[1].(*pyGlobal)
	if !ok || g.module != "torch" {
		return nil, fmt.Errorf("storage type %s, want a torch.*Storage global", pyTypeName(t[1]))
	}
	dt, ok := torchStorageTypes[g.name]
	if !ok {
		return nil, fmt.Errorf("storage type torch.%s is not supported", g.name)
	}
	key, ok1 := t[2].(string)
	loc, ok2 := t[3].(string)
	numel, ok3 := t[4].(int64)
	if !ok1 || !ok2 || !ok3 || numel < 0 {
		return nil, fmt.Errorf("storage id (%s, %s, %s), want (key str, location str, numel >= 0)", pyTypeName(t[2]), pyTypeName(t[3]), pyTypeName(t[4]))
	}
	return &pyStorage{dtype: dt, key: key, location: loc, numel: numel}, nil
}

// callGlobal "calls" a global: the few torch.save needs are interpreted, anything else becomes an inert
// object so that an unknown value elsewhere in the file (a numpy scalar, a custom class) does not stop
// the state_dicts from loading; it only fails if someone asks for that value.
func callGlobal(g *pyGlobal, args pyTuple) (any, error) {
	switch g.module + "." + g.name {
	case "collections.OrderedDict", "builtins.dict", "__builtin__.dict":
		if len(args) != 0 {
			return &pyObject{global: g}, nil // OrderedDict(iterable) is never written by torch.save
		}
		return newPyDict(), nil
	case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
		return rebuildTensor(args)
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		if len(args) < 1 {
			return nil, errors.New("_rebuild_parameter without arguments")
		}
		if _, ok := args[0].(*pyTensor); !ok {
			return nil, fmt.Errorf("_rebuild_parameter of %s, want a tensor", pyTypeName(args[0]))
		}
		return args[0], nil
	case "_codecs.encode":
		// Python 3 pickles bytes at protocol 2 as _codecs.encode(str, 'latin1').
		if len(args) == 2 {
			s, ok1 := args[0].(string)
			enc, ok2 := args[1].(string)
			if ok1 && ok2 && (enc == "latin1" || enc == "latin-1") {
				b := make([]byte, 0, len(s))
				for _, r := range s {
					if r > 0xff {
						return nil, errors.New("_codecs.encode: rune beyond latin-1")
					}
					b = append(b, byte(r))
				}
				return b, nil
			}
		}
	}
	return &pyObject{global: g}, nil
}

// rebuildTensor interprets _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
// backward_hooks[, metadata]) (and the older _rebuild_tensor without the last three).
func rebuildTensor(args pyTuple) (*pyTensor, error) {
	if len(args) < 4 || len(args) > 7 {
		return nil, fmt.Errorf("_rebuild_tensor_v2 with %d arguments, want 4 to 7", len(args))
	}
	s, ok := args[0].(*pyStorage)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2 storage is %s, want a persistent storage", pyTypeName(args[0]))
	}
	off, ok := args[1].(int64)
	if !ok || off < 0 {
		return nil, fmt.Errorf("_rebuild_tensor_v2 storage_offset %v, want an int >= 0", args[1])
	}
	shape, err := intTuple(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := intTuple(args[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(shape) != len(stride) {
		return nil, fmt.Errorf("_rebuild_tensor_v2 size %v and stride %v differ in rank", shape, stride)
	}
	return &pyTensor{storage: s, offset: off, shape: shape, stride: stride}, nil
}

func intTuple(v any, what string) ([]int64, error) {
	t, ok := v.(pyTuple)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2 %s is %s, want a tuple", what, pyTypeName(v))
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok || n < 0 {
			return nil, fmt.Errorf("_rebuild_tensor_v2 %s[%d] = %v, want an int >= 0", what, i, x)
		}
		out[i] = n
	}
	return out, nil
}

func pyTypeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case pyTuple:
		return "tuple"
	case *pyList:
		return "list"
	case *pyDict:
		return "dict"
	case *pyGlobal:
		return "global " + v.module + "." + v.name
	case *pyObject:
		return "object " + v.global.module + "." + v.global.name
	case *pyStorage:
		return "storage"
	case *pyTensor:
		return "tensor"
	}
	return fmt.Sprintf("%T", v)
}

var opNames = map[byte]string{
	0x80: "PROTO", 0x95: "FRAME", '.': "STOP", '(': "MARK", '0': "POP", '1': "POP_MARK", '2': "DUP",
	'N': "NONE", 0x88: "NEWTRUE", 0x89: "NEWFALSE", 'K': "BININT1", 'M': "BININT2", 'J': "BININT",
	0x8a: "LONG1", 0x8b: "LONG4", 'G': "BINFLOAT", 'X': "BINUNICODE", 0x8c: "SHORT_BINUNICODE",
	0x8d: "BINUNICODE8", 'T': "BINSTRING", 'U': "SHORT_BINSTRING", 'B': "BINBYTES", 'C': "SHORT_BINBYTES",
	0x8e: "BINBYTES8", ')': "EMPTY_TUPLE", 't': "TUPLE", 0x85: "TUPLE1", 0x86: "TUPLE2", 0x87: "TUPLE3",
	']': "EMPTY_LIST", 'l': "LIST", 'a': "APPEND", 'e': "APPENDS", '}': "EMPTY_DICT", 'd': "DICT",
	's': "SETITEM", 'u': "SETITEMS", 'c': "GLOBAL", 0x93: "STACK_GLOBAL", 'R': "REDUCE", 0x81: "NEWOBJ",
	'b': "BUILD", 'Q': "BINPERSID", 'h': "BINGET", 'j': "LONG_BINGET", 'q': "BINPUT", 'r': "LONG_BINPUT",
	0x94: "MEMOIZE",
}

func opName(op byte) string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return "unknown"
}
