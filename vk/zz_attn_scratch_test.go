package vk_test

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vjepa-vk/vjepa-vk/vk"
	"github.com/vjepa-vk/vjepa-vk/vk/vktest"
)

func cpuSec() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func TestZZAttnScratch(t *testing.T) {
	d := vktest.Device(t)
	dh, _ := strconv.Atoi(os.Getenv("ZZDH"))
	if dh == 0 {
		dh = 64
	}
	bwd := os.Getenv("ZZBWD") != ""
	sh := vk.AttnShape{B: 1, N: 1032, Heads: 4, HeadDim: dh, FrameTokens: 258}
	rows, dm := sh.B*sh.N, sh.Heads*sh.HeadDim
	qkv := vktest.Tensor(t, d, vk.F32, vktest.RandN(1, rows*3*dm), rows, 3*dm)
	do := vktest.Tensor(t, d, vk.F32, vktest.RandN(2, rows*dm), rows, dm)
	o := vktest.Tensor(t, d, vk.F32, nil, rows, dm)
	lse := vktest.Tensor(t, d, vk.F32, nil, sh.B, sh.Heads, sh.N)
	dqkv := vktest.Tensor(t, d, vk.F32, nil, rows, 3*dm)
	delta := vktest.Tensor(t, d, vk.F32, nil, sh.B, sh.Heads, sh.N)
	s := vktest.Stream(t, d)
	t0 := time.Now()
	vk.AttentionForward(s, o, lse, qkv, sh)
	vktest.Run(t, s)
	t1 := time.Now()
	c0 := cpuSec()
	vktest.Run(t, s)
	c1 := cpuSec()
	t2 := time.Now()
	t.Logf("fwd cpu %.3fs -> %.2f GFLOP/cpu-s", c1-c0, 4*float64(dh)*attnPairs(sh)*float64(sh.Heads*sh.B)/(c1-c0)/1e9)
	pairs := attnPairs(sh) * float64(sh.Heads*sh.B)
	t.Logf("dh=%d N=%d fwd first %.2fs, then %.3fs %.2f GFLOP/s", dh, sh.N, t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds(), 4*float64(dh)*pairs/t2.Sub(t1).Seconds()/1e9)
	if bwd {
		s2 := vktest.Stream(t, d)
		vk.AttentionBackward(s2, dqkv, delta, do, qkv, o, lse, sh)
		t0 := time.Now()
		vktest.Run(t, s2)
		t1 := time.Now()
		c0 := cpuSec()
		vktest.Run(t, s2)
		c1 := cpuSec()
		t2 := time.Now()
		t.Logf("bwd cpu %.3fs -> %.2f GFLOP/cpu-s", c1-c0, 10*float64(dh)*pairs/(c1-c0)/1e9)
		t.Logf("dh=%d N=%d bwd first %.2fs, then %.3fs %.2f GFLOP/s", dh, sh.N, t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds(), 10*float64(dh)*pairs/t2.Sub(t1).Seconds()/1e9)
	}
}
