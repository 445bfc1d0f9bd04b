package bus

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// Listen is host:port for other services; port -1 picks a free port.
	Listen string
	// StoreDir is the JetStream store directory. It must be private to
	// this server: the default is shared by every instance on a machine.
	StoreDir string
	// User and Password, when set, are demanded of every client.
	User, Password string
	// RunUser and RunPassword, when set (with User), are a second user
	// that may only run, list and read scripts (RunPermissions).
	RunUser, RunPassword string
	// MaxPayload bounds one message; 0 means 64 MiB, enough for a run
	// request at the body limit and a result at the output limit.
	MaxPayload int32
	// Debug turns on the server's own logging.
	Debug bool
}

// DefaultMaxPayload bounds a message on the embedded server.
const DefaultMaxPayload = 64 << 20

// Server is a running embedded NATS server.
type Server struct {
	*server.Server
	ownStore string
}

// StartServer starts the embedded NATS server and waits until it accepts
// connections.
func StartServer(cfg ServerConfig) (*Server, error) {
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("nats listen port %q: %w", portText, err)
	}
	if port > 0 {
		// The server only logs a failed bind; say it here, clearly.
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen: %w", err)
		}
		ln.Close()
	}
	s := &Server{}
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
		MaxPayload: payload,
		// Pending data per client must hold a few messages at the payload limit.
		MaxPending: int64(payload) * 4,
	}
	if err := cfg.auth(opts); err != nil {
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

// Addr is the host:port where the server accepts TCP clients.
func (s *Server) Addr() string {
	return s.Server.Addr().String()
}

// URL is the nats:// URL of the server's TCP listener.
func (s *Server) URL() string { return "nats://" + s.Addr() }

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
}

// Connect opens a client connection that reconnects for as long as it is
// open.
func Connect(cfg ConnConfig) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
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
