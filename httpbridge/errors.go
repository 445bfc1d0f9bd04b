package httpbridge

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// handlerFunc is an endpoint that reports failure by returning an error;
// serveError turns it into the response.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (b *Bridge) wrap(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			b.serveError(w, r, err)
		}
	}
}

// statusError carries an error reply from the bus whose body is to be sent
// as it is (a timed-out run carries its output).
type statusError struct {
	err  error
	body []byte
	hdr  nats.Header
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// transportError turns a failure to get an answer from the bus into one of
// the bus sentinels.
func transportError(err error, subject string) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders) && strings.HasPrefix(subject, bus.RunPrefix):
		return model.Errorf(model.ErrUnavailable, "no executor node is connected to the bus to run scripts")
	case errors.Is(err, nats.ErrNoResponders) && strings.HasPrefix(subject, "script.job."):
		return model.Errorf(model.ErrUnavailable, "the job service is not available on the bus")
	case errors.Is(err, nats.ErrNoResponders):
		return model.Errorf(model.ErrUnavailable, "the script catalog is not available on the bus")
	case errors.Is(err, context.Canceled):
		return model.Errorf(model.ErrCancelled, "the client went away")
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return model.Errorf(model.ErrTimeout, "no answer from the bus in time")
	case errors.Is(err, nats.ErrMaxPayload):
		return model.Errorf(model.ErrTooLarge, "request too large for the bus")
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining):
		return model.Errorf(model.ErrUnavailable, "server is shutting down")
	}
	return err
}

// serveError is the one place where errors become HTTP responses.
func (b *Bridge) serveError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		err = model.Errorf(model.ErrTooLarge, "request body larger than %d bytes", tooBig.Limit)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The body did not arrive in time (the server's read deadline).
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusRequestTimeout, model.ErrorBody{Error: "request body not received in time"})
		return
	}
	code := model.Code(err)
	if code == http.StatusInternalServerError {
		b.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	var se *statusError
	if errors.As(err, &se) {
		copyHeaders(w, se.hdr)
		if se.body != nil {
			writeJSONBytes(w, code, se.body)
			return
		}
	}
	writeJSON(w, code, model.ErrorBody{Error: model.Message(err)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		code, body = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	writeJSONBytes(w, code, body)
}

func writeJSONBytes(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(body)
	w.Write([]byte("\n"))
}

// copyHeaders passes the run headers of a bus reply on to the client.
func copyHeaders(w http.ResponseWriter, hdr nats.Header) {
	for _, k := range []string{bus.HeaderNode, bus.HeaderCache, bus.HeaderRetryAfter} {
		if v := hdr.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
}
