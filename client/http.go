package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// HTTP is a client of the server's HTTP API.
type HTTP struct {
	base string
	cfg  Config
	hc   *http.Client
	log  *slog.Logger
}

var _ Client = (*HTTP)(nil)

// NewHTTP returns a client of the HTTP API at cfg.URL. It connects on its
// first call.
func NewHTTP(cfg Config) (*HTTP, error) {
	base := strings.TrimRight(cfg.URL, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base // a listen address, as in SCRIPTHOST_HTTP
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, model.Errorf(model.ErrBadRequest, "%q: want a URL such as http://127.0.0.1:3000", cfg.URL)
	}
	// Calls from many goroutines keep their connections for the next.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &HTTP{base: base, cfg: cfg, hc: &http.Client{Transport: tr}, log: cfg.logger()}, nil
}

// Close ends the client's idle connections.
func (c *HTTP) Close() { c.hc.CloseIdleConnections() }

// send sends one request and answers the response, whose body the caller
// closes.
func (c *HTTP) send(ctx context.Context, method, path string, body []byte, hdr http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, model.Errorf(model.ErrUnavailable, "cannot reach the HTTP API at %s: %v", c.base, errors.Unwrap(err))
	}
	return resp, nil
}

// do sends one request and reads the whole answer; a status of 400 or
// more is the model's error of that code, with the server's message.
func (c *HTTP) do(ctx context.Context, method, path string, body []byte, hdr http.Header) ([]byte, error) {
	ctx, cancel := bound(ctx, c.cfg.Timeout)
	defer cancel()
	start := time.Now()
	resp, err := c.send(ctx, method, path, body, hdr)
	if err != nil && ctx.Err() != nil {
		return nil, gaveUp(ctx, c.cfg.Timeout, "from "+c.base+" ", "")
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	c.log.Debug("http request", "method", method, "path", path, "status", resp.StatusCode, "took", time.Since(start).Round(time.Microsecond))
	if err != nil {
		if ctx.Err() != nil {
			return nil, gaveUp(ctx, c.cfg.Timeout, "from "+c.base+" ", "")
		}
		return nil, fmt.Errorf("read the answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		return data, statusError(resp.StatusCode, data)
	}
	return data, nil
}

// statusError is the error of an HTTP error answer, through the one map
// of codes to errors.
func statusError(code int, body []byte) error {
	var e model.ErrorBody
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error = fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
	}
	return model.ErrorFromCode(code, e.Error)
}

func scriptPath(name string) string { return "/scripts/" + url.PathEscape(name) }

func (c *HTTP) script(ctx context.Context, method, path string, body []byte) (model.Script, error) {
	data, err := c.do(ctx, method, path, body, nil)
	if err != nil {
		return model.Script{}, err
	}
	return decodeAs[model.Script](data, "a script")
}

// List answers the names of the scripts, sorted.
func (c *HTTP) List(ctx context.Context) ([]string, error) {
	data, err := c.do(ctx, "GET", "/scripts", nil, nil)
	if err != nil {
		return nil, err
	}
	return decodeAs[[]string](data, "a list of names")
}

// Get answers a script.
func (c *HTTP) Get(ctx context.Context, name string) (model.Script, error) {
	if err := model.ValidateName(name); err != nil {
		return model.Script{}, err
	}
	return c.script(ctx, "GET", scriptPath(name), nil)
}

// Create creates a script.
func (c *HTTP) Create(ctx context.Context, name, code string) (model.Script, error) {
	if err := model.ValidateName(name); err != nil {
		return model.Script{}, err
	}
	body, _ := json.Marshal(map[string]string{"name": name, "code": code})
	return c.script(ctx, "POST", "/scripts", body)
}

// Update replaces the code of a script.
func (c *HTTP) Update(ctx context.Context, name, code string) (model.Script, error) {
	if err := model.ValidateName(name); err != nil {
		return model.Script{}, err
	}
	body, _ := json.Marshal(map[string]string{"code": code})
	return c.script(ctx, "PUT", scriptPath(name), body)
}

// Delete deletes a script.
func (c *HTTP) Delete(ctx context.Context, name string) error {
	if err := model.ValidateName(name); err != nil {
		return err
	}
	_, err := c.do(ctx, "DELETE", scriptPath(name), nil, nil)
	return err
}

// Run runs a script; a streamed run asks for server-sent events, the
// chunks of output and then the result. Closing the request (ctx ending)
// makes the server cancel the run.
func (c *HTTP) Run(ctx context.Context, name string, req model.RunRequest, opts RunOptions) (Answer, error) {
	if err := model.ValidateName(name); err != nil {
		return Answer{}, err
	}
	body, err := runBody(req)
	if err != nil {
		return Answer{}, err
	}
	hdr := http.Header{}
	if opts.streamed() {
		hdr.Set("Accept", "text/event-stream")
	}
	if opts.NoCache {
		hdr.Set("Cache-Control", "no-cache")
	}
	ctx, cancel := bound(ctx, c.cfg.Timeout)
	defer cancel()
	path := "/run/" + url.PathEscape(name)
	start := time.Now()
	resp, err := c.send(ctx, "POST", path, body, hdr)
	if err != nil && ctx.Err() != nil {
		return Answer{}, gaveUp(ctx, c.cfg.Timeout, "", "; the run was cancelled")
	}
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	c.log.Debug("http request", "method", "POST", "path", path, "status", resp.StatusCode, "took", time.Since(start).Round(time.Microsecond))
	ans := Answer{Node: resp.Header.Get(bus.HeaderNode), Cache: resp.Header.Get(bus.HeaderCache)}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			if ctx.Err() != nil {
				return Answer{}, gaveUp(ctx, c.cfg.Timeout, "", "; the run was cancelled")
			}
			return Answer{}, fmt.Errorf("read the answer of POST %s: %w", path, err)
		}
		var serr error
		if resp.StatusCode >= 400 {
			serr = statusError(resp.StatusCode, data)
		}
		ans.Result, err = decodeRun(data, serr)
		return ans, err
	}
	var done bool
	var evErr error
	err = readEvents(resp.Body, func(event, data string) bool {
		switch event {
		case "stdout", "stderr":
			var chunk string
			if json.Unmarshal([]byte(data), &chunk) == nil {
				opts.write(event, []byte(chunk))
			}
		case "skipped":
			var n map[string]int
			json.Unmarshal([]byte(data), &n)
			ans.Skipped += n["stdout"] + n["stderr"]
		case "result":
			ans.Result, evErr = decodeRun([]byte(data), nil)
			done = true
			return false
		case "error":
			var e model.ErrorBody
			json.Unmarshal([]byte(data), &e)
			evErr = model.Errorf(model.ErrUnavailable, "%s", e.Error)
			return false
		}
		return true
	})
	switch {
	case done || evErr != nil:
		return ans, evErr
	case ctx.Err() != nil:
		return Answer{}, gaveUp(ctx, c.cfg.Timeout, "", "; the run was cancelled")
	case err != nil:
		return Answer{}, fmt.Errorf("read the answer of POST %s: %w", path, err)
	}
	return Answer{}, fmt.Errorf("the answer of POST %s ended before its result", path)
}

// readEvents reads a text/event-stream as the server sends it (a streamed
// run, GET /jobs/{id}/events), calling each with every event's name and
// data until each returns false or the stream ends.
func readEvents(r io.Reader, each func(event, data string) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 256<<20) // a result event holds the whole output
	var event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event != "" && !each(event, data) {
				return nil
			}
			event, data = "", ""
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		}
	}
	return sc.Err()
}

// SubmitJob queues a job.
func (c *HTTP) SubmitJob(ctx context.Context, name string, req model.JobRequest, opts JobOptions) (model.Job, error) {
	if err := model.ValidateName(name); err != nil {
		return model.Job{}, err
	}
	body, err := jobBody(req)
	if err != nil {
		return model.Job{}, err
	}
	hdr := http.Header{}
	if opts.NoCache {
		hdr.Set("Cache-Control", "no-cache")
	}
	if opts.IdempotencyKey != "" {
		hdr.Set(bus.HeaderIdempotencyKey, opts.IdempotencyKey)
	}
	if opts.CallbackURL != "" {
		hdr.Set(bus.HeaderCallbackURL, opts.CallbackURL)
	}
	return c.job(ctx, "POST", "/jobs/"+url.PathEscape(name), body, hdr)
}

func (c *HTTP) job(ctx context.Context, method, path string, body []byte, hdr http.Header) (model.Job, error) {
	data, err := c.do(ctx, method, path, body, hdr)
	if err != nil {
		return model.Job{}, err
	}
	return decodeAs[model.Job](data, "a job")
}

// Job answers a job.
func (c *HTTP) Job(ctx context.Context, id string) (model.Job, error) {
	if err := model.ValidateJobID(id); err != nil {
		return model.Job{}, err
	}
	return c.job(ctx, "GET", "/jobs/"+id, nil, nil)
}

// CancelJob cancels a job.
func (c *HTTP) CancelJob(ctx context.Context, id string) (model.Job, error) {
	if err := model.ValidateJobID(id); err != nil {
		return model.Job{}, err
	}
	return c.job(ctx, "DELETE", "/jobs/"+id, nil, nil)
}

// Jobs lists the jobs.
func (c *HTTP) Jobs(ctx context.Context, filter model.JobListRequest) ([]model.Job, error) {
	q := url.Values{}
	if filter.Script != "" {
		q.Set("script", filter.Script)
	}
	if filter.Status != "" {
		q.Set("status", string(filter.Status))
	}
	if filter.Limit != 0 {
		q.Set("limit", strconv.Itoa(filter.Limit))
	}
	path := "/jobs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	data, err := c.do(ctx, "GET", path, nil, nil)
	if err != nil {
		return nil, err
	}
	list, err := decodeAs[model.JobList](data, "a list of jobs")
	return list.Jobs, err
}
