package httpbridge

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/scripthost/scripthost/model"
)

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// documented lists "METHOD /path" for every operation of the document.
func documented(t *testing.T, doc map[string]any) []string {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatal("no paths in the document")
	}
	var ops []string
	for path, item := range paths {
		for _, m := range methods {
			if _, ok := item.(map[string]any)[m]; ok {
				ops = append(ops, strings.ToUpper(m)+" "+path)
			}
		}
	}
	sort.Strings(ops)
	return ops
}

// routed lists "METHOD /path" for every route of the bridge's router,
// with the HEAD of every GET route and the OPTIONS of every path, which
// the bridge answers too (TestMethods).
func routed(t *testing.T, b *Bridge) []string {
	t.Helper()
	var ops []string
	paths := map[string]bool{}
	err := chi.Walk(b.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		ops = append(ops, method+" "+route)
		if method == http.MethodGet {
			ops = append(ops, "HEAD "+route)
		}
		if !paths[route] {
			paths[route] = true
			ops = append(ops, "OPTIONS "+route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(ops)
	return ops
}

func missingFrom(want, have []string) []string {
	set := map[string]bool{}
	for _, h := range have {
		set[h] = true
	}
	var missing []string
	for _, w := range want {
		if !set[w] {
			missing = append(missing, w)
		}
	}
	return missing
}

func TestOpenAPIMatchesRouter(t *testing.T) {
	b := New(Config{Version: "9.8.7"}, nil)
	srv := httptest.NewServer(b)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("openapi %q, want 3.x", v)
	}
	if v := doc["info"].(map[string]any)["version"]; v != "9.8.7" {
		t.Fatalf("info.version %v", v)
	}

	docOps, routes := documented(t, doc), routed(t, b)
	if len(routes) < 10 {
		t.Fatalf("walked only %d routes: %v", len(routes), routes)
	}
	if m := missingFrom(routes, docOps); len(m) > 0 {
		t.Errorf("routed but not in openapi.json: %v", m)
	}
	if m := missingFrom(docOps, routes); len(m) > 0 {
		t.Errorf("in openapi.json but not routed: %v", m)
	}
}

// TestOpenAPIWellFormed checks what a generator would trip on: every
// reference resolves, every path parameter is declared, operation ids are
// unique and every operation has responses with a description.
func TestOpenAPIWellFormed(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					if _, ok := resolve(doc, x.(string)); !ok {
						t.Errorf("%s: $ref %s does not resolve", at, x)
					}
				}
				walk(x, at+"/"+k)
			}
		case []any:
			for _, x := range v {
				walk(x, at)
			}
		}
	}
	walk(doc, "#")

	ids := map[string]bool{}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc["paths"].(map[string]any) {
		item := item.(map[string]any)
		for _, m := range methods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			where := strings.ToUpper(m) + " " + path
			id, _ := op["operationId"].(string)
			if id == "" || ids[id] {
				t.Errorf("%s: operationId %q missing or repeated", where, id)
			}
			ids[id] = true
			responses, _ := op["responses"].(map[string]any)
			if len(responses) == 0 {
				t.Errorf("%s: no responses", where)
			}
			for code, r := range responses {
				r := deref(doc, r)
				if d, _ := r["description"].(string); d == "" {
					t.Errorf("%s %s: no description", where, code)
				}
			}
			declared := map[string]bool{}
			for _, list := range []any{item["parameters"], op["parameters"]} {
				ps, _ := list.([]any)
				for _, p := range ps {
					p := deref(doc, p)
					if p["in"] == "path" {
						declared[p["name"].(string)] = true
					}
				}
			}
			for _, m := range param.FindAllStringSubmatch(path, -1) {
				if !declared[m[1]] {
					t.Errorf("%s: path parameter %q not declared", where, m[1])
				}
			}
		}
	}
}

// resolve follows a local reference such as #/components/schemas/Result.
func resolve(doc map[string]any, ref string) (map[string]any, bool) {
	parts, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	var cur any = doc
	for _, p := range strings.Split(parts, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	m, ok := cur.(map[string]any)
	return m, ok
}

// deref returns v, or what it refers to when it is a reference.
func deref(doc map[string]any, v any) map[string]any {
	m, _ := v.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		m, _ = resolve(doc, ref)
	}
	return m
}

// TestOpenAPILint runs `redocly lint` on the document with the rules of
// redocly.yaml at the repository's root. .ci/run installs Redocly and
// sets SCRIPTHOST_REQUIRE_REDOCLY, so in CI a missing redocly fails.
func TestOpenAPILint(t *testing.T) {
	redocly, err := exec.LookPath("redocly")
	if err != nil {
		if os.Getenv("SCRIPTHOST_REQUIRE_REDOCLY") != "" {
			t.Fatal("redocly is not on PATH")
		}
		t.Skip("redocly not on PATH (npm install @redocly/cli@2.77.0; .ci/run does)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, redocly, "lint", "--format", "json", "httpbridge/openapi.json")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var report struct {
		Totals   struct{ Errors, Warnings, Ignored int }
		Problems []struct {
			RuleID, Severity, Message string
			Location                  []struct{ Pointer string }
		}
	}
	if jerr := json.Unmarshal(out, &report); jerr != nil {
		t.Fatalf("redocly lint: %v %v\n%s\n%s", err, jerr, out, stderr.String())
	}
	// Warnings do not fail redocly lint; they fail this test.
	for _, p := range report.Problems {
		t.Errorf("%s %s: %s %v", p.Severity, p.RuleID, p.Message, p.Location)
	}
	if err != nil || report.Totals.Errors+report.Totals.Warnings > 0 {
		t.Fatalf("redocly lint: %v, %+v", err, report.Totals)
	}
	t.Logf("redocly lint: %+v (ignored: see .redocly.lint-ignore.yaml)", report.Totals)
}

// The Job schema names exactly the fields a job always has, and every
// field it may have.
func TestOpenAPIJobSchema(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatal(err)
	}
	schema, ok := resolve(doc, "#/components/schemas/Job")
	if !ok {
		t.Fatal("no Job schema")
	}
	var always map[string]any
	body, _ := json.Marshal(model.Job{})
	json.Unmarshal(body, &always)
	var required []string
	for _, r := range schema["required"].([]any) {
		required = append(required, r.(string))
	}
	var keys []string
	for k := range always {
		keys = append(keys, k)
	}
	sort.Strings(required)
	sort.Strings(keys)
	if strings.Join(required, ",") != strings.Join(keys, ",") {
		t.Errorf("required %v, a job always has %v", required, keys)
	}
	props := schema["properties"].(map[string]any)
	full, _ := json.Marshal(model.Job{Cached: true, Error: "e", IdempotencyKey: "k", CallbackURL: "u"})
	var all map[string]any
	json.Unmarshal(full, &all)
	for k := range all {
		if props[k] == nil {
			t.Errorf("job field %q not in the schema", k)
		}
	}
	for k := range props {
		if _, ok := all[k]; !ok {
			t.Errorf("schema property %q is not a job field", k)
		}
	}
	statuses := deref(doc, map[string]any{"$ref": "#/components/schemas/JobStatus"})["enum"].([]any)
	if len(statuses) != len(model.JobStatuses) {
		t.Errorf("statuses %v, want %v", statuses, model.JobStatuses)
	}
	for i, s := range model.JobStatuses {
		if i < len(statuses) && statuses[i] != string(s) {
			t.Errorf("status %d: %v, want %s", i, statuses[i], s)
		}
	}
}
