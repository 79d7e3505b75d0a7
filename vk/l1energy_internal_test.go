package vk

import "testing"

func TestL1EnergyPushLayout(t *testing.T) { checkPushLayout(t, "l1_energy", l1EnergyPush{}) }

func TestL1EnergyBackwardPushLayout(t *testing.T) {
	checkPushLayout(t, "l1_energy_backward", l1EnergyBackwardPush{})
}

func TestAttentionCachedPushLayout(t *testing.T) {
	checkPushLayout(t, "attention_cached", attnCachedPush{})
}
