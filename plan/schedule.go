package plan

import (
	"fmt"
	"strconv"
	"strings"
)

// Schedule switches between sub-goals over the planning steps of a task (planning §4: pick-and-place
// uses three image sub-goals, held for 4, 10 and 4 planning steps). Steps[i] is how many planning steps
// goal i stays active; past the end of the schedule the last goal stays.
type Schedule struct {
	Steps []int
}

// ParseSchedule reads "4,10,4" for goals goals; "" means one goal held throughout (goals must be 1).
func ParseSchedule(s string, goals int) (Schedule, error) {
	if strings.TrimSpace(s) == "" {
		if goals > 1 {
			return Schedule{}, fmt.Errorf("plan: %d goals need a switch schedule (planning steps per goal, e.g. 4,10,4)", goals)
		}
		return Schedule{}, nil
	}
	var sc Schedule
	for i, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return Schedule{}, fmt.Errorf("plan: switch schedule %q: entry %d (%q) must be an integer >= 1", s, i, f)
		}
		sc.Steps = append(sc.Steps, n)
	}
	if len(sc.Steps) != goals {
		return Schedule{}, fmt.Errorf("plan: switch schedule %q has %d entries for %d goals", s, len(sc.Steps), goals)
	}
	return sc, nil
}

// Goal is the index of the goal active at planning step (0-based).
func (s Schedule) Goal(step int) int {
	for i, n := range s.Steps {
		if step < n {
			return i
		}
		step -= n
	}
	return max(len(s.Steps)-1, 0)
}
