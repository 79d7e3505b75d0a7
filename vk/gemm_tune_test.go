package vk

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func cpuSec() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func TestGemmTune(t *testing.T) {
	spec := os.Getenv("TUNE")
	if spec == "" {
		t.Skip()
	}
	d, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	atoi := func(s string) int { v, _ := strconv.Atoi(s); return v }
	sh := strings.Split(os.Getenv("SHAPE"), ",")
	m, n, k := atoi(sh[0]), atoi(sh[1]), atoi(sh[2])
	transA, transB := os.Getenv("TA") == "1", os.Getenv("TB") == "1"
	dtb := F32
	if os.Getenv("DTB") == "bf16" {
		dtb = BF16
	}
	for _, cfg := range strings.Split(spec, ";") {
		f := strings.Split(cfg, ",")
		tile := gemmTile{wg: atoi(f[0]), bm: atoi(f[1]), bn: atoi(f[2]), bk: atoi(f[3]), t1: atoi(f[4]), t2: atoi(f[5])}
		ar, ac := m, k
		if transA {
			ar, ac = k, m
		}
		br, bc := k, n
		if transB {
			br, bc = n, k
		}
		a, _ := d.NewTensor(F32, ar, ac)
		b, _ := d.NewTensor(dtb, br, bc)
		c, _ := d.NewTensor(F32, m, n)
		s, _ := d.NewStream(false)
		s.gemm(c, a, b, GemmOpts{TransA: transA, TransB: transB, SplitK: 1}, gemmEnv{maxBinding: d.MaxBinding(), tile: &tile})
		if err := s.Run(); err != nil {
			t.Fatal(err)
		}
		c0 := cpuSec()
		reps := 3
		for range reps {
			s.Run()
		}
		sec := cpuSec() - c0
		t.Logf("tile %s: %.2f GFLOP per CPU-second", cfg, 2*float64(m*n*k*reps)/sec/1e9)
		s.Destroy()
		d.Free(a)
		d.Free(b)
		d.Free(c)
	}
}
