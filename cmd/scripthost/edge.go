package main

import (
	"errors"
	"flag"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// edgeConfig bounds what one HTTP client may hold of the server: time to
// send its headers and its body, idle keep-alive connections, header
// size, and connections at once.
type edgeConfig struct {
	ReadHeaderTimeout time.Duration
	ReadBodyTimeout   time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    byteSize
	MaxConns          int
}

// defaultEdge is the edge's defaults: generous for any real client.
func defaultEdge() edgeConfig {
	return edgeConfig{
		ReadHeaderTimeout: 10 * time.Second,
		ReadBodyTimeout:   30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		MaxConns:          1024,
	}
}

func (c *edgeConfig) edgeFlags(fs *flag.FlagSet) {
	d := defaultEdge()
	durationVar(fs, &c.ReadHeaderTimeout, "http-read-header-timeout", d.ReadHeaderTimeout, "time a client has to send a request's headers")
	durationVar(fs, &c.ReadBodyTimeout, "http-read-body-timeout", d.ReadBodyTimeout, "time a client has to send a request's body, once its headers are in (408 beyond)")
	durationVar(fs, &c.IdleTimeout, "http-idle-timeout", d.IdleTimeout, "how long an idle keep-alive connection is kept open")
	c.MaxHeaderBytes = d.MaxHeaderBytes
	fs.Var(&c.MaxHeaderBytes, "http-max-header-bytes", "size limit of a request's headers (431 beyond)")
	fs.IntVar(&c.MaxConns, "http-max-conns", d.MaxConns, "HTTP connections at once; more wait to be accepted; 0: no limit")
}

func (c *edgeConfig) validateEdge() error {
	switch {
	case c.ReadHeaderTimeout <= 0:
		return errors.New("--http-read-header-timeout must be positive")
	case c.ReadBodyTimeout <= 0:
		return errors.New("--http-read-body-timeout must be positive")
	case c.IdleTimeout <= 0:
		return errors.New("--http-idle-timeout must be positive")
	case c.MaxHeaderBytes < 1024:
		return errors.New("--http-max-header-bytes must be at least 1KiB")
	case c.MaxConns < 0:
		return errors.New("--http-max-conns must not be negative")
	}
	return nil
}

// httpServer is the HTTP server of h with the edge's bounds, and the
// listener it serves (bounded to MaxConns connections).
func (c *edgeConfig) httpServer(h http.Handler, ln net.Listener) (*http.Server, net.Listener) {
	if c.MaxConns > 0 {
		ln = netutil.LimitListener(ln, c.MaxConns)
	}
	return &http.Server{
		Handler:           bodyDeadline(h, c.ReadBodyTimeout),
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    int(c.MaxHeaderBytes),
	}, ln
}

// bodyDeadline gives each request d to send its body, from the moment its
// headers are read: a client trickling a body is cut off. (The server's
// ReadTimeout would count the headers too, and hold for the whole
// request.)
func bodyDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		h.ServeHTTP(w, r)
	})
}
