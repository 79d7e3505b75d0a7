package vk

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/shaders"
)

// SPIR-V storage classes of the blocks the layout checks read.
const (
	spirvPushConstant  = 9
	spirvStorageBuffer = 12
)

// blockMember is one member of a shader block: byte offset, byte size (−1 when the member's type is not
// one this reader sizes, e.g. a runtime array) and kind ("uint", "int", "float" for 32-bit scalars,
// "other" for anything else).
type blockMember struct {
	offset, size int
	kind         string
}

// checkPushLayout fails unless the Go struct push has the members of the push-constant block of the
// compiled shader, in order, at the same offsets, with the same sizes and, for 32-bit scalars, the same
// kind (uint32 ↔ uint, int32 ↔ int, float32 ↔ float).
func checkPushLayout(t *testing.T, shader string, push any) {
	t.Helper()
	want := spirvBlock(t, shader, spirvPushConstant, 0)
	typ := reflect.TypeOf(push)
	if typ.NumField() != len(want) {
		t.Fatalf("%s: Go push struct %s has %d fields, shader push block has %d members", shader, typ, typ.NumField(), len(want))
	}
	kinds := map[reflect.Kind]string{reflect.Uint32: "uint", reflect.Int32: "int", reflect.Float32: "float"}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if want[i].size < 0 {
			t.Fatalf("%s: push member %d has a type this check does not size", shader, i)
		}
		if off, size := int(f.Offset), int(f.Type.Size()); off != want[i].offset || size != want[i].size {
			t.Errorf("%s: push field %d (%s) at offset %d size %d, shader member at offset %d size %d",
				shader, i, f.Name, off, size, want[i].offset, want[i].size)
		}
		if k, scalar := kinds[f.Type.Kind()]; scalar && want[i].kind != "other" && k != want[i].kind {
			t.Errorf("%s: push field %d (%s) is %s, shader member is %s", shader, i, f.Name, k, want[i].kind)
		}
	}
	if n := binary.Size(push); n > pushBytes {
		t.Errorf("%s: push struct of %d bytes exceeds %d", shader, n, pushBytes)
	}
}

// spirvBlock reads the members of the block an embedded SPIR-V module declares in storage class class
// (for storage buffers: the one at descriptor binding binding). It sizes scalars, vectors of scalars and
// arrays of scalars, which is what our push blocks use.
func spirvBlock(t *testing.T, shader string, class uint32, binding int) []blockMember {
	t.Helper()
	code, err := shaders.SPIRV(shader)
	if err != nil {
		t.Fatal(err)
	}
	words := make([]uint32, len(code)/4)
	for i := range words {
		words[i] = binary.LittleEndian.Uint32(code[4*i:])
	}
	const (
		opTypeInt, opTypeFloat, opTypeVector = 21, 22, 23
		opTypeArray, opTypeStruct            = 28, 30
		opTypePointer, opConstant            = 32, 43
		opVariable, opDecorate               = 59, 71
		opMemberDecorate, decArrayStride     = 72, 6
		decBinding, decOffset                = 33, 35
	)
	size := map[uint32]int{}         // type id -> byte size of scalar and vector types
	kind := map[uint32]string{}      // type id -> kind of 32-bit scalars
	constant := map[uint32]int{}     // constant id -> value
	arrays := map[uint32][2]uint32{} // array type -> (element type, length constant)
	stride := map[uint32]int{}       // array type -> ArrayStride
	structs := map[uint32][]uint32{}
	pointee := map[uint32]uint32{} // pointer type in class -> pointee
	bindings := map[uint32]int{}   // variable id -> descriptor binding
	offsets := map[uint32]map[uint32]int{}
	var vars [][2]uint32 // (pointer type, variable id) in class
	for i := 5; i < len(words); {
		op, wc := words[i]&0xffff, int(words[i]>>16)
		if wc == 0 || i+wc > len(words) {
			t.Fatalf("%s: bad SPIR-V instruction at word %d", shader, i)
		}
		a := words[i+1 : i+wc]
		switch op {
		case opTypeInt:
			size[a[0]] = int(a[1]) / 8
			kind[a[0]] = map[bool]string{true: "int", false: "uint"}[a[2] == 1]
		case opTypeFloat:
			size[a[0]] = int(a[1]) / 8
			kind[a[0]] = "float"
		case opTypeVector:
			size[a[0]] = size[a[1]] * int(a[2])
		case opTypeArray:
			arrays[a[0]] = [2]uint32{a[1], a[2]}
		case opTypeStruct:
			structs[a[0]] = append([]uint32(nil), a[1:]...)
		case opTypePointer:
			if a[1] == class {
				pointee[a[0]] = a[2]
			}
		case opConstant:
			constant[a[1]] = int(a[2])
		case opVariable:
			if a[2] == class {
				vars = append(vars, [2]uint32{a[0], a[1]})
			}
		case opDecorate:
			switch a[1] {
			case decArrayStride:
				stride[a[0]] = int(a[2])
			case decBinding:
				bindings[a[0]] = int(a[2])
			}
		case opMemberDecorate:
			if a[2] == decOffset {
				if offsets[a[0]] == nil {
					offsets[a[0]] = map[uint32]int{}
				}
				offsets[a[0]][a[1]] = int(a[3])
			}
		}
		i += wc
	}
	for _, v := range vars {
		if b, ok := bindings[v[1]]; class == spirvStorageBuffer && (!ok || b != binding) {
			continue
		}
		block := pointee[v[0]]
		var out []blockMember
		for m, ty := range structs[block] {
			sz, ok := size[ty]
			if arr, isArr := arrays[ty]; isArr {
				// Arrays in our push structs are packed: the Go array's size must equal stride·length.
				sz, ok = stride[ty]*constant[arr[1]], size[arr[0]] == stride[ty]
			}
			if !ok {
				sz = -1
			}
			k := kind[ty]
			if k == "" || size[ty] != 4 {
				k = "other"
			}
			out = append(out, blockMember{offsets[block][uint32(m)], sz, k})
		}
		return out
	}
	t.Fatalf("%s: no block in storage class %d (binding %d)", shader, class, binding)
	return nil
}
