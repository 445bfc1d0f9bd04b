package model

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error that crosses the bus or reaches a client
// wraps one of them; Code maps them to a status in one place.
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
	// replies carry a Retry-After.
	ErrQueueFull = fmt.Errorf("%w: queue full", ErrUnavailable)
)

// StatusCancelled is the code of ErrCancelled.
const StatusCancelled = 499

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
	{ErrCancelled, StatusCancelled},
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

// ErrorFromCode is the error that a status code and its message stand for,
// as a reply or an HTTP answer carries them: an *Error whose Kind is the
// sentinel of the code (ErrInternal for a code that is none of theirs).
// An empty msg is the sentinel's own text. Code(ErrorFromCode(c, m)) is c
// for every code of the sentinels.
func ErrorFromCode(code int, msg string) error {
	kind := ErrInternal
	for _, c := range codes {
		if c.code == code {
			kind = c.err
			break
		}
	}
	if msg == "" {
		msg = kind.Error()
	}
	return &Error{Kind: kind, Msg: msg}
}

// ErrorBody is the JSON body of every error answer: {"error": "..."}.
type ErrorBody struct {
	Error string `json:"error"`
}
