package bus

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// startAuthServer starts an embedded server that demands credentials, with
// a run-only user, and an admin connection answering every catalog and
// run subject.
func startAuthServer(t *testing.T) (*Server, *sync.Map) {
	t.Helper()
	s, err := StartServer(ServerConfig{
		Listen: "127.0.0.1:-1", StoreDir: t.TempDir(),
		User: "admin", Password: "admin-secret",
		RunUser: "runner", RunPassword: "run-secret",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	admin, err := Connect(ConnConfig{InProcess: s, Name: "admin", User: "admin", Password: "admin-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	var got sync.Map // subjects that reached the services
	for _, subj := range []string{RunAll, ListSubject, GetPrefix + ">", CreateSubject, UpdatePrefix + ">", DeletePrefix + ">"} {
		if _, err := admin.Subscribe(subj, func(m *nats.Msg) {
			got.Store(m.Subject, true)
			_ = m.Respond([]byte(`"ok"`))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Flush(); err != nil {
		t.Fatal(err)
	}
	return s, &got
}

func TestServerRefusesAnonymousAndWrongPasswords(t *testing.T) {
	s, _ := startAuthServer(t)
	tests := []struct {
		name       string
		user, pass string
	}{
		{"anonymous", "", ""},
		{"wrong password", "admin", "nope"},
		{"run user, admin password", "runner", "admin-secret"},
		{"unknown user", "mallory", "run-secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []nats.Option{nats.MaxReconnects(0)}
			if tt.user != "" {
				opts = append(opts, nats.UserInfo(tt.user, tt.pass))
			}
			nc, err := nats.Connect(s.URL(), opts...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
				t.Fatalf("error %v, want an authorization violation", err)
			}
		})
	}
	// Credentials in the URL, as an executor on another machine gives them.
	nc, err := nats.Connect(strings.Replace(s.URL(), "nats://", "nats://admin:admin-secret@", 1))
	if err != nil {
		t.Fatalf("credentials in the URL: %v", err)
	}
	nc.Close()
}

func TestRunUserMayOnlyRunListAndRead(t *testing.T) {
	s, got := startAuthServer(t)
	violations := make(chan error, 16)
	nc, err := nats.Connect(s.URL(), nats.UserInfo("runner", "run-secret"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, subj := range []string{RunSubject("a.py"), ListSubject, GetSubject("a.py")} {
		if _, err := nc.Request(subj, nil, 5*time.Second); err != nil {
			t.Errorf("%s: %v", subj, err)
		}
	}
	for _, subj := range []string{CreateSubject, UpdateSubject("a.py"), DeleteSubject("a.py"), "$JS.API.INFO", SparePrefix + "a.py"} {
		_, err := nc.Request(subj, []byte(`{"name":"evil.py","code":"x"}`), 300*time.Millisecond)
		if err == nil {
			t.Errorf("%s: the run user got an answer", subj)
		}
		if _, reached := got.Load(subj); reached {
			t.Errorf("%s: the request reached the service", subj)
		}
	}
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Errorf("async error %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("no permissions violation reported")
	}
	// Nor may it listen in on the services' subjects.
	sub, err := nc.SubscribeSync("script.>")
	if err == nil {
		_ = nc.Flush()
		if _, err := sub.NextMsg(500 * time.Millisecond); err == nil {
			t.Error("the run user received a message on script.>")
		}
	}
}

func TestAuthConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  ServerConfig
	}{
		{"password without user", ServerConfig{Password: "x"}},
		{"run user without admin", ServerConfig{RunUser: "r", RunPassword: "x"}},
		{"run password without run user", ServerConfig{User: "a", Password: "x", RunPassword: "y"}},
		{"same users", ServerConfig{User: "a", Password: "x", RunUser: "a", RunPassword: "y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Listen, tt.cfg.StoreDir = "127.0.0.1:-1", t.TempDir()
			s, err := StartServer(tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("started")
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := map[string]string{
		"nats://u:p@h:4222":                "nats://u:xxxxx@h:4222",
		"nats://h:4222":                    "nats://h:4222",
		"nats://tok@h:4222":                "nats://xxxxx@h:4222",
		"nats://a:b@h1:1, nats://c:d@h2:2": "nats://a:xxxxx@h1:1,nats://c:xxxxx@h2:2",
		"":                                 "",
		"nats://u:p%40ss@h:4222":           "nats://u:xxxxx@h:4222",
	}
	for in, want := range tests {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
