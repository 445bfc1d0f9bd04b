package bus

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/model"
)

// TestReplyErrors sends errors through a reply and back: the code, the
// message and the Retry-After of a full queue travel in the headers.
func TestReplyErrors(t *testing.T) {
	for _, tc := range []struct {
		err        error
		code       int
		msg        string
		retryAfter string
	}{
		{model.Errorf(model.ErrNotFound, "script %q not found", "a.py"), 404, `script "a.py" not found`, ""},
		{model.Errorf(model.ErrTimeout, model.MsgTimedOut), 504, model.MsgTimedOut, ""},
		{model.ErrUnavailable, 503, "service unavailable", ""},
		{model.Errorf(model.ErrQueueFull, "every slot is busy"), 503, "every slot is busy", RetryAfter},
		{errors.New("disk on fire"), 500, "internal error", ""},
	} {
		m := ErrorMsg(tc.err, nil)
		if m.Header.Get(HeaderErrorCode) == "" || len(m.Data) == 0 {
			t.Errorf("%v: reply %v %q", tc.err, m.Header, m.Data)
		}
		if got := m.Header.Get(HeaderRetryAfter); got != tc.retryAfter {
			t.Errorf("%v: Retry-After %q, want %q", tc.err, got, tc.retryAfter)
		}
		back := ReplyError(m)
		if model.Code(back) != tc.code || model.Message(back) != tc.msg {
			t.Errorf("round trip of %v: %v (%d)", tc.err, back, model.Code(back))
		}
	}
	if err := ReplyError(&nats.Msg{Data: []byte("{}")}); err != nil {
		t.Errorf("a reply without headers: %v", err)
	}
}
