package vk

// Tests of how validation messages reach the user. They live in package vk to record an invalid command
// on purpose (the validation layer reports it and skips the call).

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	vulkan "github.com/vulkan-go/vulkan"
)

// invalidDispatchVUID is what the layer reports for a dispatch into a command buffer not recording.
const invalidDispatchVUID = "VUID-vkCmdDispatch-commandBuffer-recording"

// recordInvalidDispatch makes the validation layer report errors: the command buffer is not recording
// (and no pipeline is bound).
func recordInvalidDispatch(t *testing.T, d *Device) {
	t.Helper()
	s, err := d.NewStream(false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	vulkan.CmdDispatch(s.cb, 1, 1, 1) // never begun
}

// TestValidationMessagesPrinted opens the device as vjepa-vk train does (default options, validation
// turned on by VJEPA_VK_VALIDATE=1): each message must reach stderr as it arrives.
func TestValidationMessagesPrinted(t *testing.T) {
	t.Setenv("VJEPA_VK_VALIDATE", "1")
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stderr := os.Stderr
	os.Stderr = f
	d, err := Open(Options{})
	os.Stderr = stderr
	if err != nil {
		t.Fatalf("open Vulkan device with VJEPA_VK_VALIDATE=1: %v", err)
	}
	defer d.Close()
	recordInvalidDispatch(t, d)
	printed, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(printed), "vk: validation error: ") || !strings.Contains(string(printed), invalidDispatchVUID) {
		t.Errorf("stderr after an invalid dispatch = %q, want a line \"vk: validation error: ...%s...\"", printed, invalidDispatchVUID)
	}
	if msgs, lines := d.TakeMessages(), strings.Count(string(printed), "\n"); len(msgs) != lines {
		t.Errorf("%d lines printed, TakeMessages kept %d messages, want the same", lines, len(msgs))
	}
}

// TestValidationMessagesWriter checks the writer a caller gives, and that TakeMessages keeps at most
// maxKeptMessages however many arrive.
func TestValidationMessagesWriter(t *testing.T) {
	var log bytes.Buffer
	d, err := Open(Options{Validate: true, Messages: &log})
	if err != nil {
		t.Fatalf("open Vulkan device with validation: %v", err)
	}
	defer d.Close()
	recordInvalidDispatch(t, d)
	if !strings.Contains(log.String(), invalidDispatchVUID) {
		t.Fatalf("Messages after an invalid dispatch = %q, want the %s error", log.String(), invalidDispatchVUID)
	}
	d.TakeMessages()
	log.Reset()

	const extra = 3
	for i := range maxKeptMessages + extra {
		d.message("warning", fmt.Sprint("message ", i))
	}
	if lines := strings.Count(log.String(), "\n"); lines != maxKeptMessages+extra {
		t.Errorf("%d lines printed, want %d", lines, maxKeptMessages+extra)
	}
	msgs := d.TakeMessages()
	if len(msgs) != maxKeptMessages+1 || msgs[0] != "warning: message 0" || msgs[len(msgs)-1] != fmt.Sprintf("(%d more messages)", extra) {
		t.Errorf("TakeMessages kept %d messages (first %q, last %q), want %d and a count of %d more",
			len(msgs), msgs[0], msgs[len(msgs)-1], maxKeptMessages, extra)
	}
	if msgs := d.TakeMessages(); len(msgs) != 0 {
		t.Errorf("second TakeMessages = %q, want none", msgs)
	}
}
