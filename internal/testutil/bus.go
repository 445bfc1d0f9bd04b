package testutil

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
)

// StartBus starts an embedded NATS server without credentials on a free
// loopback port, its JetStream store in a folder of the test's, and
// stops it when the test ends.
func StartBus(t testing.TB) *bus.Server {
	t.Helper()
	s, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start the NATS server: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Connect connects to s in-process, and closes the connection when the
// test ends.
func Connect(t testing.TB, s *bus.Server) *nats.Conn {
	t.Helper()
	return Dial(t, bus.ConnConfig{InProcess: s})
}

// Dial connects as cfg says, and closes the connection when the test
// ends.
func Dial(t testing.TB, cfg bus.ConnConfig) *nats.Conn {
	t.Helper()
	nc, err := bus.Connect(cfg)
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
