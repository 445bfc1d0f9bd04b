package testutil

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"
)

// Event is one server-sent event, and when it was read.
type Event struct {
	Name, Data string
	At         time.Time
}

// ReadEvents reads a text/event-stream body, calling each for every event
// until it returns false. A line that has no place in an event stream is
// an error, as is a failed read.
func ReadEvents(r io.Reader, each func(Event) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 64<<20)
	var ev Event
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Name != "" || ev.Data != "" {
				ev.At = time.Now()
				if !each(ev) {
					return nil
				}
			}
			ev = Event{}
		case strings.HasPrefix(line, "event: "):
			ev.Name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.Data += strings.TrimPrefix(line, "data: ")
		case strings.HasPrefix(line, ":"):
		default:
			return fmt.Errorf("not a line of an event stream: %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the event stream: %w", err)
	}
	return nil
}
