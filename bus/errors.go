package bus

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/model"
)

// The error kinds and their codes are the model's (model.Code); this file
// carries them in replies.

// RetryAfter is the Retry-After (seconds) of a model.ErrQueueFull reply.
const RetryAfter = "1"

// ErrorMsg builds a reply for err following the NATS services convention:
// the Nats-Service-Error-Code and Nats-Service-Error headers, and a JSON
// body. body, when not nil, replaces the default {"error": msg} body.
func ErrorMsg(err error, body []byte) *nats.Msg {
	msg := model.Message(err)
	if body == nil {
		body, _ = json.Marshal(model.ErrorBody{Error: msg})
	}
	m := nats.NewMsg("")
	m.Header.Set(HeaderErrorCode, strconv.Itoa(model.Code(err)))
	m.Header.Set(HeaderError, msg)
	if errors.Is(err, model.ErrQueueFull) {
		m.Header.Set(HeaderRetryAfter, RetryAfter)
	}
	m.Data = body
	return m
}

// ReplyError returns the error carried by a reply, or nil when the reply is
// a success.
func ReplyError(m *nats.Msg) error {
	if m.Header == nil {
		return nil
	}
	codeText := m.Header.Get(HeaderErrorCode)
	if codeText == "" {
		return nil
	}
	code, err := strconv.Atoi(codeText)
	if err != nil {
		code = 500
	}
	return model.ErrorFromCode(code, m.Header.Get(HeaderError))
}
