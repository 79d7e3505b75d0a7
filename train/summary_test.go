package train

import "testing"

func TestHumanCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1K", 12288: "12.3K", 239_000: "239K", 1_210_000: "1.21M", 3_100_000_000: "3.1B"} {
		if got := humanCount(n); got != want {
			t.Errorf("humanCount(%d) = %q, want %q", n, got, want)
		}
	}
}
