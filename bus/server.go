package bus

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// Listen is host:port for other services; port -1 picks a free port;
	// ListenNone: no listener at all (only in-process clients).
	Listen string
	// StoreDir is the JetStream store directory. It must be private to
	// this server: the default is shared by every instance on a machine.
	StoreDir string
	// User and Password, when set, are the service user (executor nodes,
	// NodePermissions), and the server demands credentials of every
	// client (users.go).
	User, Password string
	// RunUser and RunPassword, when set (with User), are a second user
	// that may only run, list and read scripts (RunPermissions).
	RunUser, RunPassword string
	// MaxPayload bounds one message; 0 means DefaultMaxPayload.
	MaxPayload int32
	// Debug turns on the server's own logging.
	Debug bool
}

// DefaultMaxPayload bounds a message on the embedded server when the
// configuration does not; MaxPayloadFor derives it from the limits.
const DefaultMaxPayload = 64 << 20

// ListenNone as the listen address turns the TCP listener off.
const ListenNone = "none"

// MaxPayloadFor is the message limit that carries a request body of
// maxBody bytes and the answers that go with it: a result of two streams
// of maxOutput bytes, or a script of maxBody bytes, each JSON-escaped
// (up to 6 bytes a byte). Larger messages are refused by the server
// before they reach anyone; the parts answer 413 to bodies over maxBody.
func MaxPayloadFor(maxBody, maxOutput int64) int32 {
	n := max(6*maxBody, 12*maxOutput) + 64<<10
	return int32(min(n, DefaultMaxPayload))
}

// Server is a running embedded NATS server.
type Server struct {
	*server.Server
	ownStore string
	listen   bool
	// creds of the in-process connections, by role; nil: no auth.
	creds    map[Role]ConnConfig
	internal Internal
}

// SplitListen parses a listen address of the embedded server (not
// ListenNone): its host and port, -1 for any free one. Port 0 is refused:
// the NATS server takes it for its default, 4222.
func SplitListen(addr string) (host string, port int, err error) {
	host, portText, err := net.SplitHostPort(addr)
	if err == nil {
		port, err = strconv.Atoi(portText)
	}
	switch {
	case err != nil || port < -1 || port > 65535 || strings.Contains(host, " "):
		return "", 0, fmt.Errorf("want host:port (127.0.0.1:-1 for any free port), or %s", ListenNone)
	case port == 0:
		return "", 0, errors.New("port 0 would be NATS's default 4222; -1 is any free port")
	}
	return host, port, nil
}

// StartServer starts the embedded NATS server and waits until it accepts
// connections.
func StartServer(cfg ServerConfig) (*Server, error) {
	host, port, err := "", 0, error(nil)
	if cfg.Listen != ListenNone {
		if host, port, err = SplitListen(cfg.Listen); err != nil {
			return nil, fmt.Errorf("nats listen address %q: %w", cfg.Listen, err)
		}
	}
	if port > 0 {
		// The server only logs a failed bind; say it here, clearly.
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen: %w", err)
		}
		ln.Close()
	}
	s := &Server{listen: cfg.Listen != ListenNone, internal: NewInternal(cfg.Password)}
	store := cfg.StoreDir
	if store == "" {
		store, err = os.MkdirTemp("", "scripthost-nats-")
		if err != nil {
			return nil, err
		}
		s.ownStore = store
	}
	payload := cfg.MaxPayload
	if payload == 0 {
		payload = DefaultMaxPayload
	}
	opts := &server.Options{
		ServerName: "scripthost",
		Host:       host,
		Port:       port,
		NoLog:      !cfg.Debug,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   store,
		DontListen: !s.listen,
		MaxPayload: payload,
		// Pending data per client must hold a few messages at the payload limit.
		MaxPending: int64(payload) * 4,
		// The subject cache pays off when the same subjects are published
		// again and again; most of ours are not. Every run's reply, ack
		// and events go to inbox subjects used once, so each would be a
		// miss that fills the cache (1024 entries, then a sweep), and an
		// executor that takes its last free slot or frees one adds or
		// removes its wildcard spare interest, which walks the whole
		// cache: that walk was ~4% of the server's CPU per fork-mode run
		// at concurrency 4. Without the cache a publish matches against
		// the subscriptions themselves, a handful here.
		NoSublistCache: true,
	}
	if err := s.auth(cfg, opts); err != nil {
		s.removeStore()
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		s.removeStore()
		return nil, fmt.Errorf("nats server: %w", err)
	}
	if cfg.Debug {
		ns.ConfigureLogger()
	}
	s.Server = ns
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		s.removeStore()
		return nil, errors.New("nats server: not ready for connections after 10s")
	}
	return s, nil
}

// Addr is the host:port where the server accepts TCP clients; empty
// without a listener.
func (s *Server) Addr() string {
	if !s.listen {
		return ""
	}
	return s.Server.Addr().String()
}

// URL is the nats:// URL of the server's TCP listener; empty without one.
func (s *Server) URL() string {
	if !s.listen {
		return ""
	}
	return "nats://" + s.Addr()
}

// Internal names the internal subjects of this bus.
func (s *Server) Internal() Internal { return s.internal }

// Auth tells whether the server demands credentials.
func (s *Server) Auth() bool { return s.creds != nil }

// ConnFor is the configuration of an in-process connection of a part of
// scripthost: it connects as that part's user (users.go).
func (s *Server) ConnFor(role Role, name string) ConnConfig {
	c := s.creds[role]
	c.InProcess, c.Name = s, name
	return c
}

// Close shuts the server down and removes a store it created itself.
func (s *Server) Close() {
	s.Shutdown()
	s.WaitForShutdown()
	s.removeStore()
}

func (s *Server) removeStore() {
	if s.ownStore != "" {
		os.RemoveAll(s.ownStore)
	}
}

// ConnConfig configures a client connection.
type ConnConfig struct {
	// URL of a NATS server or cluster (comma-separated); ignored when
	// InProcess is set.
	URL string
	// InProcess connects to an embedded server without a socket.
	InProcess *Server
	// Name identifies the client in the server's monitoring.
	Name string
	// User and Password, when set, authenticate the client.
	User, Password string
	// Log, when set, receives the connection's asynchronous errors (a
	// permissions violation, a slow consumer).
	Log *slog.Logger
	// InboxPrefix, when set, starts the client's inboxes (the reply
	// subjects of its requests); with a User and no prefix it is
	// InboxPrefix(User), the only inboxes the embedded server lets that
	// user subscribe to.
	InboxPrefix string
}

// Connect opens a client connection that reconnects for as long as it is
// open.
func Connect(cfg ConnConfig) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}
	prefix := cfg.InboxPrefix
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
		if prefix == "" && ValidUser(cfg.User) == nil {
			prefix = InboxPrefix(cfg.User)
		}
	}
	if prefix == "" {
		prefix = userInboxFromURL(cfg.URL)
	}
	if prefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(prefix))
	}
	if cfg.Log != nil {
		log := cfg.Log
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			attrs := []any{"connection", cfg.Name, "err", err}
			if sub != nil {
				attrs = append(attrs, "subject", sub.Subject)
			}
			log.Warn("nats", attrs...)
		}))
	}
	url := cfg.URL
	if cfg.InProcess != nil {
		opts = append(opts, nats.InProcessServer(cfg.InProcess.Server))
		url = ""
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", Redact(url), err)
	}
	return nc, nil
}

// userInboxFromURL is the inbox prefix of a user named in a NATS URL
// (nats://user:pass@host), if any.
func userInboxFromURL(urls string) string {
	for _, p := range strings.Split(urls, ",") {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, hasPassword := u.User.Password(); hasPassword && ValidUser(u.User.Username()) == nil {
			return InboxPrefix(u.User.Username())
		}
	}
	return ""
}
