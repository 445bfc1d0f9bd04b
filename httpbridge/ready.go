package httpbridge

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// Connected reports whether the bus connection is up; *nats.Conn is one.
// Without it, /readyz relies on the catalog's answer alone.
type Connected interface {
	IsConnected() bool
}

// readyTimeout bounds the catalog's answer to a readiness check, well
// below the period of a typical probe.
const readyTimeout = 2 * time.Second

// ready serves GET /readyz: 200 when the bus is connected and the catalog
// has loaded the scripts (it answers script.list), else 503.
func (b *Bridge) ready(w http.ResponseWriter, r *http.Request) error {
	if c, ok := b.bus.(Connected); ok && !c.IsConnected() {
		return model.Errorf(model.ErrUnavailable, "not ready: not connected to the NATS bus")
	}
	reply, err := b.request(r.Context(), readyTimeout, bus.ListSubject, nil, nil)
	if err != nil {
		return model.Errorf(model.ErrUnavailable, "not ready: the catalog does not answer: %s", model.Message(err))
	}
	var names []string
	if err := json.Unmarshal(reply.Data, &names); err != nil {
		return model.Errorf(model.ErrUnavailable, "not ready: the catalog's answer is not a list of scripts")
	}
	writeJSON(w, http.StatusOK, readyBody{Status: "ready", Scripts: len(names)})
	return nil
}

// readyBody is the answer of a ready server.
type readyBody struct {
	Status  string `json:"status"`
	Scripts int    `json:"scripts"`
}
