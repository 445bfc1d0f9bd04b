package model

import (
	"errors"
	"testing"
)

func TestErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		msg  string
	}{
		{Errorf(ErrNotFound, "script %q not found", "a.py"), 404, `script "a.py" not found`},
		{Errorf(ErrTimeout, MsgTimedOut), 504, MsgTimedOut},
		{ErrUnavailable, 503, "service unavailable"},
		{ErrQueueFull, 503, "service unavailable"},
		{Errorf(ErrCancelled, "cancelled"), StatusCancelled, "cancelled"},
		{errors.New("disk on fire"), 500, "internal error"},
	} {
		if Code(tc.err) != tc.code || Message(tc.err) != tc.msg {
			t.Errorf("%v: code %d message %q", tc.err, Code(tc.err), Message(tc.err))
		}
		back := ErrorFromCode(Code(tc.err), Message(tc.err))
		if Code(back) != tc.code || Message(back) != tc.msg {
			t.Errorf("ErrorFromCode of %v: %v (%d)", tc.err, back, Code(back))
		}
	}
	// A code that is none of the sentinels' is an internal error that
	// keeps its message; no message is the kind's own.
	if err := ErrorFromCode(418, "teapot"); Code(err) != 500 || Message(err) != "teapot" || !errors.Is(err, ErrInternal) {
		t.Errorf("ErrorFromCode(418): %v (%d)", err, Code(err))
	}
	if err := ErrorFromCode(404, ""); !errors.Is(err, ErrNotFound) || Message(err) != "not found" {
		t.Errorf("ErrorFromCode(404, \"\"): %v", err)
	}
}
