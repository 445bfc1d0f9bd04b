package httpbridge

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/scripthost/scripthost/model"
)

// Auth: with a token configured, every request but the health checks needs
// Authorization: Bearer <token>. The admin token (Config.Token) may do
// everything; the run token (Config.RunToken) may list, read and run
// scripts, and gets 403 on writes. Without a token or with a wrong one,
// 401 and a WWW-Authenticate challenge. With no token configured the API
// is open.

// openPaths answer without a token: health checks for orchestrators.
var openPaths = map[string]bool{"/healthz": true, "/readyz": true}

// role is what a token may do.
type role int

const (
	noRole role = iota
	runRole
	adminRole
)

// tokens holds the digests of the configured tokens: comparing digests of
// equal length in constant time tells nothing of a token's length or
// content.
type tokens struct {
	admin, run [sha256.Size]byte
	hasAdmin   bool
	hasRun     bool
}

func newTokens(admin, run string) tokens {
	return tokens{
		admin: sha256.Sum256([]byte(admin)), hasAdmin: admin != "",
		run: sha256.Sum256([]byte(run)), hasRun: run != "",
	}
}

func (t tokens) enabled() bool { return t.hasAdmin || t.hasRun }

// roleOf compares the presented token with both tokens, always both.
func (t tokens) roleOf(presented string) role {
	d := sha256.Sum256([]byte(presented))
	admin := subtle.ConstantTimeCompare(d[:], t.admin[:]) & boolInt(t.hasAdmin)
	run := subtle.ConstantTimeCompare(d[:], t.run[:]) & boolInt(t.hasRun)
	switch {
	case admin == 1:
		return adminRole
	case run == 1:
		return runRole
	}
	return noRole
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// runOnly tells whether a run token may make the request: reads (and
// OPTIONS), runs, and jobs (submit and cancel).
func runOnly(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	case http.MethodPost:
		return r.URL.Path == "/run" || strings.HasPrefix(r.URL.Path, "/run/") || strings.HasPrefix(r.URL.Path, "/jobs/")
	case http.MethodDelete:
		return strings.HasPrefix(r.URL.Path, "/jobs/")
	}
	return false
}

// authorize is the middleware that enforces the tokens.
func (b *Bridge) authorize(next http.Handler) http.Handler {
	tokens := newTokens(b.cfg.Token, b.cfg.RunToken)
	if !tokens.enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if openPaths[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		presented, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="scripthost"`)
			b.serveError(w, r, model.Errorf(model.ErrUnauthorized, "authentication required: send Authorization: Bearer <token>"))
			return
		}
		switch tokens.roleOf(presented) {
		case adminRole:
		case runRole:
			if !runOnly(r) {
				b.serveError(w, r, model.Errorf(model.ErrForbidden, "this token may only list, read and run scripts"))
				return
			}
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="scripthost", error="invalid_token"`)
			b.serveError(w, r, model.Errorf(model.ErrUnauthorized, "invalid token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
