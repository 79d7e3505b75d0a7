package vk_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/vk"
)

// lavapipeWidthChild marks the child process of TestLavapipeWidth: it prints the devices as JSON.
const lavapipeWidthChild = "VJEPA_VK_TEST_WIDTH_CHILD"

// TestLavapipeWidth runs a process that lists the devices with LP_NATIVE_VECTOR_WIDTH unset, and one with
// it set to 256: lavapipe's subgroups are 16 lanes wide in the first on an x86-64 CPU with AVX-512
// (F, VL, BW, DQ), 8 in the second (the user's setting wins), and the first leaves other CPUs as Mesa
// has them.
func TestLavapipeWidth(t *testing.T) {
	if os.Getenv(lavapipeWidthChild) == "1" {
		infos, err := vk.ListDevices()
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewEncoder(os.Stdout).Encode(infos); err != nil {
			t.Fatal(err)
		}
		return
	}
	lavapipeSubgroup := func(t *testing.T, width string) (int, string) {
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "LP_NATIVE_VECTOR_WIDTH=") {
				env = append(env, kv)
			}
		}
		env = append(env, lavapipeWidthChild+"=1")
		if width != "" {
			env = append(env, "LP_NATIVE_VECTOR_WIDTH="+width)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestLavapipeWidth$")
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		var infos []vk.DeviceInfo
		dec := json.NewDecoder(strings.NewReader(string(out)))
		if err := dec.Decode(&infos); err != nil {
			t.Fatalf("child output: %v\n%s", err, out)
		}
		for _, in := range infos {
			if strings.Contains(in.Name, "llvmpipe") {
				return in.SubgroupSize, in.Name
			}
		}
		t.Skipf("no lavapipe device among %d", len(infos))
		return 0, ""
	}
	wide := vk.WideLavapipeCPU()
	got, name := lavapipeSubgroup(t, "")
	switch {
	case wide && got != 16:
		t.Errorf("unset: %s has subgroups of %d on a CPU with AVX-512, want 16", name, got)
	case !wide && got > 8:
		t.Errorf("unset: %s has subgroups of %d on a CPU without AVX-512, want Mesa's own (at most 8)", name, got)
	}
	t.Logf("unset: %s, subgroup %d", name, got)
	if got, name := lavapipeSubgroup(t, "256"); got != 8 {
		t.Errorf("LP_NATIVE_VECTOR_WIDTH=256: %s has subgroups of %d, want 8", name, got)
	}
}
