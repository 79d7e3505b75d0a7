// Package shaders holds the GLSL compute shaders of vjepa-vk and embeds their SPIR-V, compiled by
// build.sh into spv/<stem>[.<variant>].spv and committed, so `go build` needs no shader compiler.
package shaders

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed spv/*.spv
var spv embed.FS

// SPIRV returns the compiled module named name ("gemm", "gemm.coopmat", ...).
func SPIRV(name string) ([]byte, error) {
	b, err := spv.ReadFile("spv/" + name + ".spv")
	if err != nil {
		return nil, fmt.Errorf("shaders: no compiled module %q (run ./build.sh)", name)
	}
	return b, nil
}

// Names lists every embedded module.
func Names() []string {
	ents, _ := fs.ReadDir(spv, "spv")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".spv"))
	}
	sort.Strings(out)
	return out
}
