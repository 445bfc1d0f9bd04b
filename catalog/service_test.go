package catalog_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/catalog"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// serve starts an embedded NATS server and a catalog service on it, and
// returns a client connection.
func serve(t *testing.T) (*catalog.Catalog, *nats.Conn, micro.Service) {
	t.Helper()
	srv := testutil.StartBus(t)
	c, _ := newCatalog(t, "", 0)
	svc, err := c.Serve(testutil.Connect(t, srv), "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	return c, testutil.Connect(t, srv), svc
}

func request(t *testing.T, nc *nats.Conn, subject, body string) *nats.Msg {
	t.Helper()
	m, err := nc.Request(subject, []byte(body), 5*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	return m
}

func TestServiceEndpoints(t *testing.T) {
	_, nc, _ := serve(t)
	script := func(name, code string) string {
		b, _ := json.Marshal(model.Script{Name: name, Code: code, Version: model.Version([]byte(code))})
		return string(b)
	}
	tests := []struct {
		name    string
		subject string
		body    string
		code    int    // 0: success
		want    string // success body, exactly; or a part of the error message
	}{
		{"list empty", bus.ListSubject, "", 0, `[]`},
		{"create", bus.CreateSubject, `{"name":"a.py","code":"print('a')\n"}`, 0, script("a.py", "print('a')\n")},
		{"create second", bus.CreateSubject, `{"name":"b.c.py","code":""}`, 0, script("b.c.py", "")},
		{"create existing", bus.CreateSubject, `{"name":"a.py","code":"x"}`, 409, "already exists"},
		{"create bad name", bus.CreateSubject, `{"name":"../a.py","code":"x"}`, 400, "invalid script name"},
		{"create no body", bus.CreateSubject, ``, 400, `"name" and "code"`},
		{"create no code", bus.CreateSubject, `{"name":"c.py"}`, 400, `"code" is required`},
		{"create no name", bus.CreateSubject, `{"code":"x"}`, 400, `"name" is required`},
		{"create wrong type", bus.CreateSubject, `{"name":1,"code":"x"}`, 400, "must be a string"},
		{"create malformed", bus.CreateSubject, `{"name":`, 400, "invalid JSON"},
		{"create trailing data", bus.CreateSubject, `{"name":"c.py","code":"x"} {}`, 400, "unexpected data"},
		{"create array", bus.CreateSubject, `[1]`, 400, "invalid JSON"},
		{"list", bus.ListSubject, "", 0, `["a.py","b.c.py"]`},
		{"get", bus.GetSubject("a.py"), "", 0, script("a.py", "print('a')\n")},
		{"get dotted", bus.GetSubject("b.c.py"), "", 0, script("b.c.py", "")},
		{"get missing", bus.GetSubject("nope.py"), "", 404, `"nope.py" not found`},
		{"get bad name", bus.GetSubject("nope"), "", 400, "invalid script name"},
		{"get dollar name", bus.GetSubject("$x.py"), "", 400, "invalid script name"},
		{"update", bus.UpdateSubject("a.py"), `{"code":"print('A')\n"}`, 0, script("a.py", "print('A')\n")},
		{"get updated", bus.GetSubject("a.py"), "", 0, script("a.py", "print('A')\n")},
		{"update missing", bus.UpdateSubject("nope.py"), `{"code":"x"}`, 404, "not found"},
		{"update bad name", bus.UpdateSubject("nope.txt"), `{"code":"x"}`, 400, "invalid script name"},
		{"update no code", bus.UpdateSubject("a.py"), `{}`, 400, `"code" is required`},
		{"update code not a string", bus.UpdateSubject("a.py"), `{"code":["x"]}`, 400, "must be a string"},
		{"update empty body", bus.UpdateSubject("a.py"), ``, 400, `"code"`},
		{"delete", bus.DeleteSubject("a.py"), "", 0, ``},
		{"delete again", bus.DeleteSubject("a.py"), "", 404, "not found"},
		{"delete bad name", bus.DeleteSubject("a"), "", 400, "invalid script name"},
		{"get deleted", bus.GetSubject("a.py"), "", 404, "not found"},
		{"list after delete", bus.ListSubject, "", 0, `["b.c.py"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := request(t, nc, tt.subject, tt.body)
			err := bus.ReplyError(m)
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("error reply %v (body %s)", err, m.Data)
				}
				if string(m.Data) != tt.want {
					t.Fatalf("body %s, want %s", m.Data, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("success %s, want error %d", m.Data, tt.code)
			}
			if got := m.Header.Get(bus.HeaderErrorCode); got != strconv.Itoa(tt.code) {
				t.Fatalf("%s: %q, want %d (error %v)", bus.HeaderErrorCode, got, tt.code, err)
			}
			if model.Code(err) != tt.code {
				t.Fatalf("ReplyError code %d, want %d", model.Code(err), tt.code)
			}
			var body model.ErrorBody
			if jerr := json.Unmarshal(m.Data, &body); jerr != nil {
				t.Fatalf("error body %q is not JSON: %v", m.Data, jerr)
			}
			if body.Error != m.Header.Get(bus.HeaderError) || !strings.Contains(body.Error, tt.want) {
				t.Fatalf("error body %q, header %q; want a message containing %q", body.Error, m.Header.Get(bus.HeaderError), tt.want)
			}
		})
	}
}

func TestServiceMicro(t *testing.T) {
	_, nc, svc := serve(t)
	info := svc.Info()
	if info.Name != catalog.ServiceName || info.Version != "1.2.3" || info.Description == "" {
		t.Fatalf("info %+v", info)
	}
	subjects := map[string]bool{}
	for _, ep := range info.Endpoints {
		subjects[ep.Subject] = true
		if ep.QueueGroup != bus.CatalogQueue {
			t.Errorf("endpoint %s in queue group %q, want %q", ep.Name, ep.QueueGroup, bus.CatalogQueue)
		}
		if ep.Metadata["request"] == "" || ep.Metadata["response"] == "" {
			t.Errorf("endpoint %s without metadata", ep.Name)
		}
	}
	for _, s := range []string{bus.ListSubject, bus.GetPrefix + ">", bus.CreateSubject, bus.UpdatePrefix + ">", bus.DeletePrefix + ">"} {
		if !subjects[s] {
			t.Errorf("no endpoint on %s", s)
		}
	}

	// Discovery over the bus, as `nats micro ls` does it.
	subj, err := micro.ControlSubject(micro.PingVerb, catalog.ServiceName, "")
	if err != nil {
		t.Fatal(err)
	}
	var ping micro.Ping
	if err := json.Unmarshal(request(t, nc, subj, "").Data, &ping); err != nil || ping.Name != catalog.ServiceName {
		t.Fatalf("ping: %+v, %v", ping, err)
	}

	// Errors count in the stats. micro counts a request once its handler
	// has returned, after the reply is out: wait for the request, whose
	// error is counted with it.
	request(t, nc, bus.GetSubject("missing.py"), "")
	requests, errorsSeen := 0, 0
	testutil.WaitFor(t, 30*time.Second, "the request in the stats", func() bool {
		requests, errorsSeen = 0, 0
		for _, ep := range svc.Stats().Endpoints {
			requests += ep.NumRequests
			errorsSeen += ep.NumErrors
		}
		return requests > 0
	})
	if requests != 1 || errorsSeen != 1 {
		t.Fatalf("stats count %d requests, %d errors; want 1, 1", requests, errorsSeen)
	}
}

func TestServeBadVersion(t *testing.T) {
	nc := testutil.Connect(t, testutil.StartBus(t))
	c, _ := newCatalog(t, "", 0)
	if _, err := c.Serve(nc, "v1"); err == nil {
		t.Fatal("Serve accepted a version that is not SemVer")
	}
}

// TestServiceSurvivesJunk sends junk to every endpoint, with and without a
// reply subject, and checks that the service still answers.
func TestServiceSurvivesJunk(t *testing.T) {
	c, nc, _ := serve(t)
	junk := []string{"", "null", "{", "[]", `{"name":null,"code":null}`, "\x00\xff", strings.Repeat("[", 10000), `{"name":"` + strings.Repeat("a", 100000) + `.py","code":""}`}
	subjects := []string{bus.ListSubject, bus.CreateSubject, bus.GetSubject("x.py"), bus.UpdateSubject("x.py"), bus.DeleteSubject("x.py"), bus.GetPrefix + "a.b.c", bus.UpdatePrefix + "-"}
	for _, s := range subjects {
		for _, j := range junk {
			if err := nc.Publish(s, []byte(j)); err != nil {
				t.Fatal(err)
			}
			m := request(t, nc, s, j)
			if err := bus.ReplyError(m); err != nil && model.Code(err) >= 500 {
				t.Fatalf("%s %q: %v", s, j, err)
			}
		}
	}
	if got := string(request(t, nc, bus.ListSubject, "").Data); got != "[]" {
		t.Fatalf("list after junk: %s", got)
	}
	if len(c.List()) != 0 {
		t.Fatal("junk created a script")
	}
}
