package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/dist"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// run calls dispatch as main does and returns the exit status and both streams.
func run(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = dispatch(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

// TestDispatch checks the conventions of a command-line tool: help that was asked for goes to stdout
// with status 0; a wrong command line gets its error and usage on stderr with status 2; a command that
// fails at run time exits 1.
func TestDispatch(t *testing.T) {
	cases := []struct {
		args   []string
		code   int
		stdout string // substring of stdout; "" means stdout must be empty
		stderr string // substring of stderr; "" means stderr must be empty
	}{
		{args: nil, code: 2, stderr: "usage: vjepa-vk <command>"},
		{args: []string{"--help"}, code: 0, stdout: "usage: vjepa-vk <command>"},
		{args: []string{"-h"}, code: 0, stdout: "  train "},
		{args: []string{"help"}, code: 0, stdout: "  data inspect "},
		{args: []string{"help", "train"}, code: 0, stdout: "--resume string"},
		{args: []string{"train", "--help"}, code: 0, stdout: "usage: vjepa-vk train --config FILE"},
		{args: []string{"train", "-h"}, code: 0, stdout: "--print-config"},
		{args: []string{"train", "--help"}, code: 0, stdout: "75  interrupted by SIGINT/SIGTERM"},
		{args: []string{"export", "--checkpoint", "best"}, code: 2, stderr: "--out DIR is required"},
		{args: []string{"export", "--checkpoint", "best", "--out", "x"}, code: 2, stderr: "give --run RUN_DIR or --config FILE"},
		{args: []string{"help", "data"}, code: 0, stdout: "data bench"},
		{args: []string{"help", "data", "inspect"}, code: 0, stdout: "--source string"},
		{args: []string{"data", "inspect", "--help"}, code: 0, stdout: "--max-episodes"},
		{args: []string{"help", "frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{args: []string{"help", "train", "extra"}, code: 2, stderr: "help takes one command"},
		{args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{args: []string{"data"}, code: 2, stderr: "data needs a subcommand: data bench, data check, data inspect"},
		{args: []string{"data", "frobnicate"}, code: 2, stderr: `unknown command "data frobnicate"`},
		{args: []string{"train", "--bogus"}, code: 2, stderr: "vjepa-vk: train: unknown flag: --bogus\nusage: vjepa-vk train --config FILE"},
		{args: []string{"train"}, code: 2, stderr: "vjepa-vk: train: --config FILE is required"},
		{args: []string{"bench", "--steps", "0"}, code: 2, stderr: "--steps must be >= 1"},
		{args: []string{"convert", "only-one.pt"}, code: 2, stderr: "want IN and OUT paths, got 1 arguments\nusage: vjepa-vk convert IN.pt"},
		{args: []string{"make-demo-data"}, code: 2, stderr: "want one output directory"},
		{args: []string{"merge", "--base", "x.pt"}, code: 2, stderr: "--base, --adapter and --out are required"},
		{args: []string{"report"}, code: 2, stderr: "want at least one RUN_DIR"},
		{args: []string{"devices", "--jsn"}, code: 2, stderr: "unknown flag: --jsn"},
		{args: []string{"report", "/nonexistent/run"}, code: 1, stderr: "/nonexistent/run"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, "_"), func(t *testing.T) {
			code, stdout, stderr := run(c.args...)
			if code != c.code {
				t.Errorf("vjepa-vk %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(c.args, " "), code, c.code, stdout, stderr)
			}
			check := func(stream, got, want string) {
				if want == "" && got != "" {
					t.Errorf("vjepa-vk %s: %s should be empty, got:\n%s", strings.Join(c.args, " "), stream, got)
				}
				if want != "" && !strings.Contains(got, want) {
					t.Errorf("vjepa-vk %s: %s lacks %q:\n%s", strings.Join(c.args, " "), stream, want, got)
				}
			}
			check("stdout", stdout, c.stdout)
			check("stderr", stderr, c.stderr)
		})
	}
}

// TestHelpEveryCommand asks every command of the table for its help: each must parse its flags with
// parseFlags, so that the help lands on stdout under the command's usage line.
func TestHelpEveryCommand(t *testing.T) {
	var names []string
	for n := range commands() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Run(strings.ReplaceAll(n, " ", "_"), func(t *testing.T) {
			code, stdout, stderr := run(append([]string{"help"}, strings.Fields(n)...)...)
			if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "usage: vjepa-vk "+n+" ") {
				t.Errorf("vjepa-vk help %s: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout only", n, code, stdout, stderr)
			}
		})
	}
}

// TestVersion runs --version against the real Vulkan loader the tests use.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		code, stdout, stderr := run(arg)
		if code != 0 || stderr != "" {
			t.Fatalf("vjepa-vk %s: exit %d, stderr %q", arg, code, stderr)
		}
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		want := []*regexp.Regexp{
			regexp.MustCompile(`^vjepa-vk \S+`),
			regexp.MustCompile(`^commit   \S+`),
			regexp.MustCompile(`^go       ` + regexp.QuoteMeta(runtime.Version()) + ` ` + runtime.GOOS + `/` + runtime.GOARCH + `$`),
			regexp.MustCompile(`^vulkan   loader 1\.\d+\.\d+$`),
			regexp.MustCompile(`^mpi      (none found|.+ \(lib\S+\.so[.\d]*\))`),
		}
		if len(lines) != len(want) {
			t.Fatalf("vjepa-vk %s printed %d lines, want %d:\n%s", arg, len(lines), len(want), stdout)
		}
		for i, re := range want {
			if !re.MatchString(lines[i]) {
				t.Errorf("vjepa-vk %s line %d = %q, want to match %s", arg, i+1, lines[i], re)
			}
		}
	}
}

func TestVersionText(t *testing.T) {
	stamped := &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20260101120000-0123456789ab+dirty"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.time", Value: "2026-01-01T12:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	cases := []struct {
		name     string
		bi       *debug.BuildInfo
		fallback string
		want     []string
	}{
		{"stamped", stamped, "ignored", []string{"vjepa-vk v0.0.0-20260101120000-0123456789ab+dirty\n",
			"commit   0123456789abcdef (2026-01-01T12:00:00Z, with uncommitted changes)\n", "vulkan   loader 1.3.239\n"}},
		{"worktree build", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "fedcba+dirty",
			[]string{"vjepa-vk (devel)\n", "commit   fedcba+dirty\n"}},
		{"nothing", nil, "", []string{"vjepa-vk (unknown)\n", "commit   (unknown: built without VCS information)\n"}},
	}
	for _, c := range cases {
		got := versionText(c.bi, c.fallback, "1.3.239")
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: versionText lacks %q:\n%s", c.name, w, got)
			}
		}
	}
}

// TestDevicesJSON checks that every key of devices --json is snake_case, as in the other commands' JSON
// (bench, data inspect, plan-memory), on the real device list plus a cooperative-matrix shape.
func TestDevicesJSON(t *testing.T) {
	infos, err := vk.ListDevices()
	if err != nil {
		t.Skip(err)
	}
	infos = append(infos, vk.DeviceInfo{Index: len(infos), Name: "synthetic", CoopMat: true,
		CoopMatShapes: []vk.CoopMatShape{{M: 16, N: 16, K: 16, AType: "f16", BType: "f16", CType: "f32", DType: "f32"}}})
	var b bytes.Buffer
	if err := writeDevicesJSON(&b, 0, infos, []dist.Library{{Soname: "libmpi.so.40", Version: "Open MPI v4.1.4"}}); err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	var keys []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				keys = append(keys, k)
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	for _, k := range keys {
		if !snake.MatchString(k) {
			t.Errorf("devices --json key %q is not snake_case", k)
		}
	}
	for _, k := range []string{"chosen", "devices", "api_version", "coopmat_shapes", "a_type", "device_local_bytes"} {
		if !strings.Contains(b.String(), `"`+k+`"`) {
			t.Errorf("devices --json lacks key %q", k)
		}
	}
}
