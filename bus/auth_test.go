package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// authBus is an embedded server that demands credentials, with a run-only
// user, and the parts of scripthost connected as their own users: a node
// answering runs and the internal subjects, and a catalog answering its
// subjects, each answering "ok" and noting the subject it heard.
type authBus struct {
	s       *Server
	reached sync.Map // subjects that reached a part
}

func startAuthServer(t *testing.T) *authBus {
	t.Helper()
	s, err := StartServer(ServerConfig{
		Listen: "127.0.0.1:-1", StoreDir: t.TempDir(),
		User: "svc", Password: "svc-secret",
		RunUser: "runner", RunPassword: "run-secret",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	b := &authBus{s: s}
	parts := []struct {
		role     Role
		subjects []string
	}{
		{RoleNode, []string{RunAll, s.Internal().All()}},
		{RoleCatalog, []string{ListSubject, GetPrefix + ">", CreateSubject, UpdatePrefix + ">", DeletePrefix + ">"}},
	}
	for _, p := range parts {
		nc, err := Connect(s.ConnFor(p.role, "part"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		for _, subj := range p.subjects {
			if _, err := nc.Subscribe(subj, func(m *nats.Msg) {
				b.reached.Store(m.Subject, true)
				_ = m.Respond([]byte(`"ok"`))
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// violations connects as user and collects the server's permission
// errors.
func connectUser(t *testing.T, s *Server, user, pass string, opts ...nats.Option) (*nats.Conn, chan error) {
	t.Helper()
	errs := make(chan error, 64)
	opts = append(opts, nats.UserInfo(user, pass), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	nc, err := nats.Connect(s.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// wantViolation waits for the next error the server reported to the
// connection of errs: a permissions violation whose text has want (the
// server names the operation and the subject, `Publish to "a.b"`).
func wantViolation(t *testing.T, errs chan error, want string) {
	t.Helper()
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), want) {
			t.Errorf("async error %v, want a permissions violation for %s", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("no permissions violation reported for %s", want)
	}
}

func TestServerRefusesAnonymousAndWrongPasswords(t *testing.T) {
	b := startAuthServer(t)
	tests := []struct {
		name       string
		user, pass string
	}{
		{"anonymous", "", ""},
		{"wrong password", "svc", "nope"},
		{"run user, service password", "runner", "svc-secret"},
		{"unknown user", "mallory", "run-secret"},
		{"internal user, guessed password", internalUsers[RoleBridge], ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []nats.Option{nats.MaxReconnects(0)}
			if tt.user != "" {
				opts = append(opts, nats.UserInfo(tt.user, tt.pass))
			}
			nc, err := nats.Connect(b.s.URL(), opts...)
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
	nc, err := nats.Connect(strings.Replace(b.s.URL(), "nats://", "nats://svc:svc-secret@", 1), nats.CustomInboxPrefix(InboxPrefix("svc")))
	if err != nil {
		t.Fatalf("credentials in the URL: %v", err)
	}
	nc.Close()
}

func TestRunUserMayOnlyRunListAndRead(t *testing.T) {
	b := startAuthServer(t)
	nc, errs := connectUser(t, b.s, "runner", "run-secret", nats.CustomInboxPrefix(InboxPrefix("runner")))
	for _, subj := range []string{RunSubject("a.py"), ListSubject, GetSubject("a.py")} {
		if _, err := nc.Request(subj, nil, 5*time.Second); err != nil {
			t.Errorf("%s: %v", subj, err)
		}
	}
	for _, subj := range []string{CreateSubject, UpdateSubject("a.py"), DeleteSubject("a.py"), "$JS.API.INFO",
		"$KV." + ScriptsBucket + ".a.py", b.s.Internal().SpareSubject("a.py")} {
		_, err := nc.Request(subj, []byte(`{"name":"evil.py","code":"x"}`), 300*time.Millisecond)
		if err == nil {
			t.Errorf("%s: the run user got an answer", subj)
		}
		if _, reached := b.reached.Load(subj); reached {
			t.Errorf("%s: the request reached the service", subj)
		}
		wantViolation(t, errs, fmt.Sprintf("Publish to %q", subj))
	}
	// Nor may it listen in on the services' subjects, the internal ones,
	// or anyone's inboxes but its own: the subscription is refused, and a
	// message on its subjects, sent by a part that may send it and
	// answered by one that may hear it, does not reach the run user.
	bridge, err := Connect(b.s.ConnFor(RoleBridge, "bridge"))
	if err != nil {
		t.Fatal(err)
	}
	defer bridge.Close()
	node, _ := connectUser(t, b.s, "svc", "svc-secret", nats.CustomInboxPrefix(InboxPrefix("svc")))
	spare := b.s.Internal().SpareSubject("a.py")
	for _, tc := range []struct {
		subscribe string
		from      *nats.Conn
		request   string // its message, or its answer, is on subscribe
	}{
		{"script.>", bridge, CreateSubject},
		{">", bridge, CreateSubject},
		{RunAll, bridge, RunSubject("a.py")},
		{"_INBOX.>", bridge, ListSubject},        // the catalog's answer to the bridge
		{InboxPrefix("svc") + ".>", node, spare}, // a node's answer to a node
		{b.s.Internal().All(), node, spare},
	} {
		sub, err := nc.SubscribeSync(tc.subscribe)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		wantViolation(t, errs, fmt.Sprintf("Subscription to %q", tc.subscribe))
		if _, err := tc.from.Request(tc.request, []byte(`{"name":"a.py","code":"x"}`), 5*time.Second); err != nil {
			t.Fatalf("%s: %v", tc.request, err)
		}
		// Had the server taken the subscription, the message would be
		// on its way by now: it left before the answer.
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
			t.Errorf("subscribed to %s, the run user received %s %q", tc.subscribe, m.Subject, m.Data)
		} else if !errors.Is(err, nats.ErrTimeout) {
			t.Errorf("subscription to %s: %v", tc.subscribe, err)
		}
		_ = sub.Unsubscribe()
	}
}

// A client without the run user's inbox prefix gets no replies: its
// default inboxes (_INBOX.<id>) are not its own.
func TestRunUserNeedsItsInboxPrefix(t *testing.T) {
	b := startAuthServer(t)
	nc, errs := connectUser(t, b.s, "runner", "run-secret")
	if _, err := nc.Request(ListSubject, nil, time.Second); err == nil {
		t.Fatal("a reply reached an inbox outside the user's prefix")
	}
	wantViolation(t, errs, `Subscription to "_INBOX.`)
}

// The parts that answer requests publish their answers on whatever reply
// subject a request names. The server lets them publish only into
// inboxes (and, for nodes, on the internal subjects, which a caller cannot
// name: the executor's own test covers a reply naming one): a reply
// subject that names a write subject or a key of the scripts bucket gets
// nothing.
func TestReplySubjectsCannotSteerTheAnswers(t *testing.T) {
	b := startAuthServer(t)
	kvConn, err := Connect(b.s.ConnFor(RoleKV, "kv"))
	if err != nil {
		t.Fatal(err)
	}
	defer kvConn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, err := jetstream.New(kvConn)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: ScriptsBucket, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}

	nc, _ := connectUser(t, b.s, "runner", "run-secret", nats.CustomInboxPrefix(InboxPrefix("runner")))
	for _, reply := range []string{DeleteSubject("victim.py"), UpdateSubject("victim.py"), CreateSubject,
		"$KV." + ScriptsBucket + ".victim.py"} {
		for _, req := range []string{RunSubject("a.py"), ListSubject, GetSubject("a.py")} {
			before := func() bool { _, ok := b.reached.Load(reply); return ok }()
			if err := nc.PublishRequest(req, reply, []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			// The request was answered (or refused) by now: a ping on the
			// same connection after it comes back after it was handled.
			if _, err := nc.Request(ListSubject, nil, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if _, ok := b.reached.Load(reply); ok && !before {
				t.Errorf("request %s with reply %s: the answer reached %s", req, reply, reply)
			}
		}
	}
	if _, err := kv.Get(ctx, "victim.py"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the bucket got victim.py: %v", err)
	}
}

func TestAuthConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  ServerConfig
	}{
		{"password without user", ServerConfig{Password: "x"}},
		{"run user without service user", ServerConfig{RunUser: "r", RunPassword: "x"}},
		{"user without password", ServerConfig{User: "a"}},
		{"run password without run user", ServerConfig{User: "a", Password: "x", RunPassword: "y"}},
		{"run user without password", ServerConfig{User: "a", Password: "x", RunUser: "r"}},
		{"same users", ServerConfig{User: "a", Password: "x", RunUser: "a", RunPassword: "y"}},
		{"a dot in a user", ServerConfig{User: "a.b", Password: "x"}},
		{"a wildcard in a run user", ServerConfig{User: "a", Password: "x", RunUser: "r>", RunPassword: "y"}},
		{"an internal name", ServerConfig{User: internalUsers[RoleKV], Password: "x"}},
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

func TestInternalSubjects(t *testing.T) {
	a, b := NewInternal("one secret"), NewInternal("another")
	if a.SpareSubject("x.py") == b.SpareSubject("x.py") || a.All() == b.All() {
		t.Fatal("two secrets give the same internal subjects")
	}
	if NewInternal("one secret").SpareSubject("x.py") != a.SpareSubject("x.py") {
		t.Fatal("one secret gives two sets of subjects")
	}
	if name, ok := a.SpareName(a.SpareSubject("x.py")); !ok || name != "x.py" {
		t.Fatalf("SpareName = %q %v", name, ok)
	}
	alive := a.NewAlive()
	if !a.IsAlive(alive) || b.IsAlive(alive) || a.IsAlive(DeleteSubject("x.py")) || a.IsAlive(alive+".x") || a.IsAlive(a.All()) {
		t.Fatal("IsAlive accepts what is not a liveness subject of the bus")
	}
	if got := InternalFromURL("nats://u:pw@h:1", ""); got != NewInternal("pw") {
		t.Fatal("the password in a URL does not give the internal subjects")
	}
}

func TestReservedReply(t *testing.T) {
	for _, s := range []string{"$KV." + JobsBucket + ".x", "$JS.API.STREAM.DELETE.x", JobEventPrefix + "a.py.x", "script.delete.x.py", "scripthost.jobs.kill.x"} {
		if !ReservedReply(s) {
			t.Errorf("%s is not reserved", s)
		}
	}
	for _, s := range []string{InboxPrefix("caller") + ".abc", "_INBOX.abc.def", "reply.here"} {
		if ReservedReply(s) {
			t.Errorf("%s is reserved", s)
		}
	}
}
