package plan_test

import (
	"strings"
	"testing"

	"github.com/vjepa-vk/vjepa-vk/plan"
)

func TestSchedule(t *testing.T) {
	sc, err := plan.ParseSchedule("4, 10,4", 3)
	if err != nil {
		t.Fatal(err)
	}
	for step, want := range map[int]int{0: 0, 3: 0, 4: 1, 13: 1, 14: 2, 17: 2, 18: 2, 100: 2} {
		if got := sc.Goal(step); got != want {
			t.Errorf("Goal(%d) = %d, want %d", step, got, want)
		}
	}
	one, err := plan.ParseSchedule("", 1)
	if err != nil || one.Goal(7) != 0 {
		t.Errorf("empty schedule: %v, goal %d", err, one.Goal(7))
	}
	for _, c := range []struct {
		s     string
		goals int
		want  string
	}{{"", 2, "need a switch schedule"}, {"4,x", 2, "entry 1"}, {"4,0", 2, "entry 1"}, {"4,10", 3, "2 entries for 3 goals"}} {
		if _, err := plan.ParseSchedule(c.s, c.goals); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSchedule(%q, %d): %v, want %q", c.s, c.goals, err, c.want)
		}
	}
}
