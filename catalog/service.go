package catalog

import (
	"encoding/json"
	"fmt"
	"runtime/debug"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// ServiceName is the catalog's name among NATS services ($SRV.PING etc.).
const ServiceName = "scripthost-catalog"

// op is one catalog endpoint: it takes a request's subject and body and
// returns the value to answer as JSON (nil: an empty body) or an error.
type op func(subject string, body []byte) (any, error)

// Serve answers the catalog subjects on nc as a NATS micro service named
// ServiceName, in the queue group bus.CatalogQueue. version must be SemVer.
// It returns once the server knows the subscriptions. Stop the returned
// service to stop serving.
func (c *Catalog) Serve(nc *nats.Conn, version string) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:        ServiceName,
		Version:     version,
		Description: "scripthost script catalog: list, read, create, update and delete the Python scripts of the scripts folder",
		QueueGroup:  bus.CatalogQueue,
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			c.log.Warn("catalog service: nats error", "subject", e.Subject, "error", e.Description)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("catalog service: %w", err)
	}
	endpoints := []struct {
		name, subject string
		op            op
		request       string
		response      string
	}{
		{"list", bus.ListSubject, c.opList,
			"empty", `sorted JSON array of script names`},
		{"get", bus.GetPrefix + ">", c.opGet,
			"empty; the script name ends the subject", `{"name","code","version"}`},
		{"create", bus.CreateSubject, c.opCreate,
			`{"name","code"}`, `{"name","code","version"} of the created script`},
		{"update", bus.UpdatePrefix + ">", c.opUpdate,
			`{"code"}; the script name ends the subject`, `{"name","code","version"}`},
		{"delete", bus.DeletePrefix + ">", c.opDelete,
			"empty; the script name ends the subject", "empty"},
	}
	for _, ep := range endpoints {
		err := svc.AddEndpoint(ep.name, c.handler(ep.name, ep.op),
			micro.WithEndpointSubject(ep.subject),
			micro.WithEndpointQueueGroup(bus.CatalogQueue),
			micro.WithEndpointMetadata(map[string]string{
				"request":  ep.request,
				"response": ep.response,
				"errors":   `headers Nats-Service-Error-Code (400, 404, 409, 500) and Nats-Service-Error; body {"error": "..."}`,
			}))
		if err != nil {
			svc.Stop()
			return nil, fmt.Errorf("catalog service: endpoint %s: %w", ep.name, err)
		}
	}
	// Requests sent on other connections right after Serve returns must
	// find the subscriptions in place on the server.
	if err := nc.Flush(); err != nil {
		svc.Stop()
		return nil, fmt.Errorf("catalog service: %w", err)
	}
	return svc, nil
}

// handler adapts an op to micro: JSON replies, errors in the micro
// convention, and no panic ever reaching the connection's goroutine.
func (c *Catalog) handler(name string, fn op) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		defer func() {
			if r := recover(); r != nil {
				c.log.Error("catalog service: panic", "endpoint", name, "subject", req.Subject(), "panic", r, "stack", string(debug.Stack()))
				c.replyError(req, name, fmt.Errorf("panic: %v", r))
			}
		}()
		if n := len(req.Data()); n > c.maxBody {
			c.replyError(req, name, model.Errorf(model.ErrTooLarge, "request body larger than %d bytes", c.maxBody))
			return
		}
		v, err := fn(req.Subject(), req.Data())
		if err != nil {
			c.replyError(req, name, err)
			return
		}
		var body []byte
		if v != nil {
			if body, err = json.Marshal(v); err != nil {
				c.replyError(req, name, fmt.Errorf("encode reply: %w", err))
				return
			}
		}
		if err := req.Respond(body); err != nil {
			// Typically a script larger than the bus's message limit.
			c.replyError(req, name, fmt.Errorf("send reply of %d bytes: %w", len(body), err))
		}
	})
}

// replyError answers err as bus.ErrorMsg builds it (the
// Nats-Service-Error-Code and Nats-Service-Error headers and a {"error":
// ...} body), through micro, which counts it. Internal details stay in the
// log.
func (c *Catalog) replyError(req micro.Request, endpoint string, err error) {
	if model.Code(err) >= 500 {
		c.log.Error("catalog service: request failed", "endpoint", endpoint, "subject", req.Subject(), "error", err)
	}
	m := bus.ErrorMsg(err, nil)
	if rerr := req.Error(m.Header.Get(bus.HeaderErrorCode), m.Header.Get(bus.HeaderError), m.Data, micro.WithHeaders(micro.Headers(m.Header))); rerr != nil {
		c.log.Warn("catalog service: cannot send error reply", "endpoint", endpoint, "subject", req.Subject(), "error", rerr)
	}
}

// nameFrom takes the script name that ends subject after prefix.
func nameFrom(subject, prefix string) (string, error) {
	name, ok := bus.NameFrom(subject, prefix)
	if !ok {
		if len(subject) > 2*model.MaxNameLen {
			subject = subject[:2*model.MaxNameLen] + "..."
		}
		return "", model.Errorf(model.ErrBadRequest, "subject %q names no script: use %s<name>", subject, prefix)
	}
	return name, model.ValidateName(name)
}

func (c *Catalog) opList(string, []byte) (any, error) { return c.List(), nil }

func (c *Catalog) opGet(subject string, _ []byte) (any, error) {
	name, err := nameFrom(subject, bus.GetPrefix)
	if err != nil {
		return nil, err
	}
	return c.Get(name)
}

func (c *Catalog) opCreate(_ string, body []byte) (any, error) {
	req, err := model.DecodeCreate(body)
	if err != nil {
		return nil, err
	}
	return c.Create(*req.Name, *req.Code)
}

func (c *Catalog) opUpdate(subject string, body []byte) (any, error) {
	name, err := nameFrom(subject, bus.UpdatePrefix)
	if err != nil {
		return nil, err
	}
	req, err := model.DecodeUpdate(body)
	if err != nil {
		return nil, err
	}
	return c.Update(name, *req.Code)
}

func (c *Catalog) opDelete(subject string, _ []byte) (any, error) {
	name, err := nameFrom(subject, bus.DeletePrefix)
	if err != nil {
		return nil, err
	}
	return nil, c.Delete(name)
}
