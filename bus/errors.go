package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
)

// Sentinel errors. Every error that crosses the bus or reaches an HTTP
// client wraps one of them; Code maps them to a status in one place.
var (
	ErrBadRequest   = errors.New("bad request")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrNotFound     = errors.New("not found")
	ErrExists       = errors.New("already exists")
	ErrTooLarge     = errors.New("request too large")
	ErrUnavailable  = errors.New("service unavailable")
	ErrTimeout      = errors.New("timed out")
	// ErrCancelled is a run stopped because its caller went away or asked
	// to cancel it: the caller's doing, not the server's (code 499, the
	// "client closed request" of nginx).
	ErrCancelled = errors.New("cancelled")
	ErrInternal  = errors.New("internal error")
	// ErrQueueFull is an ErrUnavailable that says when to try again: its
	// replies carry HeaderRetryAfter.
	ErrQueueFull = fmt.Errorf("%w: queue full", ErrUnavailable)
)

// RetryAfter is the Retry-After (seconds) of an ErrQueueFull reply.
const RetryAfter = "1"

var codes = []struct {
	err  error
	code int
}{
	{ErrBadRequest, 400},
	{ErrUnauthorized, 401},
	{ErrForbidden, 403},
	{ErrNotFound, 404},
	{ErrExists, 409},
	{ErrTooLarge, 413},
	{ErrUnavailable, 503},
	{ErrTimeout, 504},
	{ErrCancelled, 499},
	{ErrInternal, 500},
}

// Error is an error with a message meant for the caller. Its Kind is one of
// the sentinels above.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

// Errorf returns an *Error of the given kind with a formatted message.
func Errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Code is the HTTP-like status code of err: 400, 404, 503, ... and 500 for
// anything that is not one of the sentinels.
func Code(err error) int {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return 500
}

// Message is the text a caller may see for err. Errors that are not *Error
// are internal: their details stay in the logs.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.err.Error()
		}
	}
	return ErrInternal.Error()
}

// kindOf is the sentinel for a code; unknown codes are internal errors.
func kindOf(code int) error {
	for _, c := range codes {
		if c.code == code {
			return c.err
		}
	}
	return ErrInternal
}

// StatusCancelled is the code of ErrCancelled.
const StatusCancelled = 499

// ErrorBody is the JSON body of every error reply: {"error": "..."}.
type ErrorBody struct {
	Error string `json:"error"`
}

// ErrorMsg builds a reply for err following the NATS services convention:
// the Nats-Service-Error-Code and Nats-Service-Error headers, and a JSON
// body. body, when not nil, replaces the default {"error": msg} body.
func ErrorMsg(err error, body []byte) *nats.Msg {
	msg := Message(err)
	if body == nil {
		body, _ = json.Marshal(ErrorBody{Error: msg})
	}
	m := nats.NewMsg("")
	m.Header.Set(HeaderErrorCode, strconv.Itoa(Code(err)))
	m.Header.Set(HeaderError, msg)
	if errors.Is(err, ErrQueueFull) {
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
	msg := m.Header.Get(HeaderError)
	if msg == "" {
		msg = kindOf(code).Error()
	}
	return &Error{Kind: kindOf(code), Msg: msg}
}
