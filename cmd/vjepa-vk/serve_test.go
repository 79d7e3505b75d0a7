package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestServeCommand runs `vjepa-vk serve` as a process: it answers /healthz, a plan request and a bad one
// (400 naming the field), and SIGTERM shuts it down cleanly (exit 0).
func TestServeCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("serves from a child process")
	}
	dir := t.TempDir()
	img, err := os.ReadFile(writePNG(t, dir, "obs.png", 80, 64, 0))
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(img)
	var checked bool
	var lines []string
	code, stderr := vjepaVK(t, func(line string, p *os.Process) {
		lines = append(lines, line)
		_, addr, ok := strings.Cut(line, " at http://")
		if !ok || checked {
			return
		}
		checked = true
		defer p.Signal(syscall.SIGTERM)
		base := "http://" + strings.Fields(addr)[0]
		resp, err := http.Get(base + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("GET /healthz: %v %v", resp, err)
			return
		}
		resp.Body.Close()
		for _, c := range []struct {
			body   map[string]any
			status int
			want   string
		}{
			{map[string]any{"image": b64, "goals": []string{b64}, "state": []float64{0.4, 0, 0.3, 3.1, 0, 0, 0.5}}, 200, `"action"`},
			{map[string]any{"image": b64, "goals": []string{b64}, "state": []float64{0.4, 0, 0.3, 3.1, 0, 0}}, 400, `"field":"state"`},
		} {
			body, _ := json.Marshal(c.body)
			resp, err := http.Post(base+"/plan", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			var out bytes.Buffer
			out.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status || !strings.Contains(out.String(), c.want) {
				t.Errorf("POST /plan: %d %s; want %d and %s", resp.StatusCode, out.String(), c.status, c.want)
			}
		}
	}, "serve", "--config", demoConfig, "--listen", "127.0.0.1:0", "--samples", "6", "--iterations", "2", "--topk", "3")
	if !checked {
		t.Fatalf("the server never said where it listens: %q %s", lines, stderr)
	}
	if code != 0 || !strings.Contains(strings.Join(lines, "\n"), "stopped") {
		t.Errorf("after SIGTERM: exit %d, output %q, stderr %s", code, lines, stderr)
	}
}

func TestServeBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "127.0.0.1:0"}, "--config FILE is required"},
		{[]string{"--config", demoConfig, "--queue", "0"}, "--queue"},
		{[]string{"--config", demoConfig, "--timeout", "0s"}, "--timeout"},
		{[]string{"--config", demoConfig, "--max-body-mib", "0"}, "--max-body-mib"},
		{[]string{"--config", demoConfig, "--planner", "sgd"}, `planner "sgd"`},
		{[]string{"--config", demoConfig, "--topk", "1"}, "topk 1"},
		{[]string{"--config", demoConfig, "--listen", "127.0.0.1:99999"}, "99999"},
		{[]string{"--config", demoConfig, "--adapter", filepath.Join(t.TempDir(), "nope")}, "nope"},
		{[]string{"--config", demoConfig, "stray"}, "unexpected arguments"},
	} {
		if err := runServe(context.Background(), c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve %v: %v, want %q", c.args, err, c.want)
		}
	}
}
