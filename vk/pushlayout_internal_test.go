package vk

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/shaders"
)

// pushMember is one member of a shader's push-constant block: byte offset and size.
type pushMember struct{ offset, size int }

// checkPushLayout fails unless the Go struct push has the members of the push-constant block of the
// compiled shader, in order, at the same offsets and with the same sizes.
func checkPushLayout(t *testing.T, shader string, push any) {
	t.Helper()
	want := spirvPushLayout(t, shader)
	typ := reflect.TypeOf(push)
	if typ.NumField() != len(want) {
		t.Fatalf("%s: Go push struct %s has %d fields, shader push block has %d members", shader, typ, typ.NumField(), len(want))
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		got := pushMember{int(f.Offset), int(f.Type.Size())}
		if got != want[i] {
			t.Errorf("%s: push field %d (%s) at offset %d size %d, shader member at offset %d size %d",
				shader, i, f.Name, got.offset, got.size, want[i].offset, want[i].size)
		}
	}
	if n := binary.Size(push); n > pushBytes {
		t.Errorf("%s: push struct of %d bytes exceeds %d", shader, n, pushBytes)
	}
}

// spirvPushLayout reads the member offsets and sizes of the push-constant block of an embedded SPIR-V
// module (scalars, vectors of scalars and arrays of scalars, which is what our push blocks use).
func spirvPushLayout(t *testing.T, shader string) []pushMember {
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
		decOffset, storagePushConstant       = 35, 9
	)
	size := map[uint32]int{}         // type id -> byte size of scalar and vector types
	constant := map[uint32]int{}     // constant id -> value
	arrays := map[uint32][2]uint32{} // array type -> (element type, length constant)
	stride := map[uint32]int{}       // array type -> ArrayStride
	structs := map[uint32][]uint32{}
	pointee := map[uint32]uint32{} // push-constant pointer type -> pointee
	offsets := map[uint32]map[uint32]int{}
	var block uint32
	for i := 5; i < len(words); {
		op, wc := words[i]&0xffff, int(words[i]>>16)
		a := words[i+1 : i+wc]
		switch op {
		case opTypeInt, opTypeFloat:
			size[a[0]] = int(a[1]) / 8
		case opTypeVector:
			size[a[0]] = size[a[1]] * int(a[2])
		case opTypeArray:
			arrays[a[0]] = [2]uint32{a[1], a[2]}
		case opTypeStruct:
			structs[a[0]] = append([]uint32(nil), a[1:]...)
		case opTypePointer:
			if a[1] == storagePushConstant {
				pointee[a[0]] = a[2]
			}
		case opConstant:
			constant[a[1]] = int(a[2])
		case opVariable:
			if a[2] == storagePushConstant {
				block = pointee[a[0]]
			}
		case opDecorate:
			if a[1] == decArrayStride {
				stride[a[0]] = int(a[2])
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
	if block == 0 {
		t.Fatalf("%s: no push-constant block", shader)
	}
	var out []pushMember
	for m, ty := range structs[block] {
		sz, ok := size[ty]
		if arr, isArr := arrays[ty]; isArr {
			// Arrays in our push structs are packed: the Go array's size must equal stride·length.
			sz, ok = stride[ty]*constant[arr[1]], size[arr[0]] == stride[ty]
		}
		if !ok {
			t.Fatalf("%s: push member %d has a type this check does not size", shader, m)
		}
		out = append(out, pushMember{offsets[block][uint32(m)], sz})
	}
	return out
}
