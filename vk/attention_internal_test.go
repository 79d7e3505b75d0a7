package vk

import "testing"

// TestAttentionPushLayout checks that attnPush matches the push block of the three attention shaders in
// every build (scalar, cooperative-matrix, emulated cooperative-matrix, CPU).
func TestAttentionPushLayout(t *testing.T) {
	for _, k := range []string{"attention", "attention_backward_dq", "attention_backward_dkv"} {
		for _, p := range []attnPath{{}, {coop: true}, {coop: true, emulated: true}, {cpu: true}} {
			checkPushLayout(t, p.shader(k), attnPush{})
		}
	}
}

// TestAttentionCoopShapes checks the launch shapes the cooperative-matrix kernels get: on a 48 KiB GPU at
// the model's head dim the forward takes 4 warps × 64 keys and the backward kernels 4 × 32 (the shapes the
// shared-memory layouts were sized for); on lavapipe's 32 KiB the emulation still finds a shape for every
// head dim up to attnMaxHeadDim.
func TestAttentionCoopShapes(t *testing.T) {
	gpu := &Device{Info: DeviceInfo{SharedMemory: 48 << 10, MaxWorkgroupInvoc: 1024}}
	for k, want := range map[string]attnConfig{
		"attention":              {wg: 128, rows: 1, tile: 64, coop: true},
		"attention_backward_dq":  {wg: 128, rows: 1, tile: 32, coop: true},
		"attention_backward_dkv": {wg: 128, rows: 1, tile: 32, coop: true},
	} {
		if got := (attnPath{coop: true}).config(gpu, k, 64); got != want {
			t.Errorf("%s at dh=64 on 48 KiB: %+v, want %+v", k, got, want)
		}
	}
	cpu := &Device{Info: DeviceInfo{SharedMemory: 32 << 10, MaxWorkgroupInvoc: 1024}}
	for _, k := range []string{"attention", "attention_backward_dq", "attention_backward_dkv"} {
		for dh := 16; dh <= attnMaxHeadDim; dh += 16 {
			c := (attnPath{coop: true, emulated: true}).config(cpu, k, dh)
			if got := attnCoopShared(k, dh, c.wg/32, c.tile, true); got > 32<<10 {
				t.Errorf("%s at dh=%d: %+v needs %d bytes", k, dh, c, got)
			}
		}
	}
}
