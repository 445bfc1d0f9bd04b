package bus

import (
	"strings"
	"testing"
)

func TestStartServerBusyPort(t *testing.T) {
	s, err := StartServer(ServerConfig{Listen: "127.0.0.1:-1", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	nc, err := Connect(ConnConfig{URL: s.URL(), Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	_, err = StartServer(ServerConfig{Listen: s.Addr(), StoreDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("second server on %s: %v", s.Addr(), err)
	}
}
