package httpbridge

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
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

// routed lists "METHOD /path" for every route of the bridge's router.
func routed(t *testing.T, b *Bridge) []string {
	t.Helper()
	var ops []string
	err := chi.Walk(b.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		ops = append(ops, method+" "+route)
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
