package executor

import (
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
)

// runService is the node's NATS service, spoken in the micro protocol
// (io.nats.micro.v1: $SRV.PING, $SRV.INFO and $SRV.STATS, so that
// `nats micro ls|info|stats` and any micro client see it), but answered
// here rather than by nats.go/micro. micro counts a request, its
// processing time and its error while its handler runs, and calls the
// handler one message at a time; a node must take more requests while
// its runs go on, so its handler returns long before the run answers and
// micro's numbers would say nothing. Here a request is counted when it is
// answered, just before its reply goes out (so a caller that has its
// reply finds it counted): its processing time from receipt to reply, and
// its error (400, 404, 503, 504 ...) as the caller sees it. The service's
// own types and subjects are micro's.
type runService struct {
	nc          *nats.Conn
	identity    micro.ServiceIdentity
	description string
	endpoint    micro.EndpointInfo
	data        func() any // the endpoint's Data in STATS

	mu       sync.Mutex
	started  time.Time
	stats    micro.EndpointStats
	subs     []*nats.Subscription
	stopOnce sync.Once
}

// runServiceConfig describes the service and its one endpoint.
type runServiceConfig struct {
	Name, Version, Description string
	Metadata                   map[string]string
	Endpoint                   micro.EndpointInfo
	// Stats returns the endpoint's Data in STATS (the node's own counts).
	Stats func() any
}

// startRunService subscribes the endpoint (handled by handle, which must
// not block: it hands each request to a goroutine that calls answered)
// and the control subjects.
func startRunService(nc *nats.Conn, cfg runServiceConfig, handle nats.MsgHandler) (*runService, error) {
	if cfg.Metadata == nil {
		cfg.Metadata = map[string]string{}
	}
	if cfg.Endpoint.Metadata == nil {
		cfg.Endpoint.Metadata = map[string]string{}
	}
	s := &runService{
		nc:          nc,
		identity:    micro.ServiceIdentity{Name: cfg.Name, ID: nuid.Next(), Version: cfg.Version, Metadata: cfg.Metadata},
		description: cfg.Description,
		endpoint:    cfg.Endpoint,
		data:        cfg.Stats,
		started:     time.Now().UTC(),
	}
	s.stats = micro.EndpointStats{Name: cfg.Endpoint.Name, Subject: cfg.Endpoint.Subject, QueueGroup: cfg.Endpoint.QueueGroup}
	sub, err := nc.QueueSubscribe(cfg.Endpoint.Subject, cfg.Endpoint.QueueGroup, handle)
	if err != nil {
		return nil, err
	}
	s.subs = append(s.subs, sub)
	verbs := map[micro.Verb]func() any{
		micro.PingVerb:  func() any { return micro.Ping{ServiceIdentity: s.identity, Type: micro.PingResponseType} },
		micro.InfoVerb:  s.info,
		micro.StatsVerb: s.statsReply,
	}
	for verb, reply := range verbs {
		for _, kind := range [][2]string{{"", ""}, {cfg.Name, ""}, {cfg.Name, s.identity.ID}} {
			subject, err := micro.ControlSubject(verb, kind[0], kind[1])
			if err == nil {
				sub, err = nc.Subscribe(subject, func(m *nats.Msg) {
					body, _ := json.Marshal(reply())
					m.Respond(body)
				})
			}
			if err != nil {
				s.stop()
				return nil, err
			}
			s.subs = append(s.subs, sub)
		}
	}
	// The server has the subscriptions before Serve returns: a request
	// sent right after finds the node.
	if err := nc.Flush(); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *runService) info() any {
	return micro.Info{ServiceIdentity: s.identity, Type: micro.InfoResponseType, Description: s.description,
		Endpoints: []micro.EndpointInfo{s.endpoint}}
}

func (s *runService) statsReply() any {
	s.mu.Lock()
	ep := s.stats
	started := s.started
	s.mu.Unlock()
	if s.data != nil {
		ep.Data, _ = json.Marshal(s.data())
	}
	return micro.Stats{ServiceIdentity: s.identity, Type: micro.StatsResponseType, Started: started,
		Endpoints: []*micro.EndpointStats{&ep}}
}

// answered counts one answered request: d from its receipt to its reply;
// code and message the error it answered, if any ("" for a result).
func (s *runService) answered(d time.Duration, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.stats
	st.NumRequests++
	st.ProcessingTime += d
	st.AverageProcessingTime = st.ProcessingTime / time.Duration(st.NumRequests)
	if code != "" {
		st.NumErrors++
		st.LastError = code + ":" + message // as micro writes it
	}
}

// stop drains the endpoint and the control subjects: requests already
// delivered are still handled.
func (s *runService) stop() error {
	var errs []error
	s.stopOnce.Do(func() {
		s.mu.Lock()
		subs := s.subs
		s.mu.Unlock()
		for _, sub := range subs {
			if err := sub.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}
