package httpbridge

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
)

// openapiDoc is the OpenAPI 3 description of every endpoint of the
// bridge; TestOpenAPIMatchesRouter keeps it true to the router.
//
//go:embed openapi.json
var openapiDoc []byte

// openapi returns the document to serve, with info.version set to the
// server's version.
func openapi(version string) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	if info, ok := doc["info"].(map[string]any); ok && version != "" {
		info["version"] = version
	}
	return json.MarshalIndent(doc, "", "  ")
}

// serveOpenAPI serves GET /openapi.json.
func (b *Bridge) serveOpenAPI(w http.ResponseWriter, r *http.Request) error {
	d := &b.openapi
	d.once.Do(func() { d.body, d.err = openapi(b.cfg.Version) })
	if d.err != nil {
		return d.err
	}
	writeJSONBytes(w, http.StatusOK, d.body)
	return nil
}

// openapiOnce holds the document, built on first use.
type openapiOnce struct {
	once sync.Once
	body []byte
	err  error
}
