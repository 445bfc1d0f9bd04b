package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// RunRequest is the body of a run request, on HTTP and on the bus alike.
// Both fields are optional and an empty body is a valid request.
type RunRequest struct {
	// Data is sent, as the raw bytes received, to the script's stdin.
	Data json.RawMessage `json:"data,omitempty"`
	// Args follow the script's path in its argv.
	Args []string `json:"args,omitempty"`
}

// Result is what one run of a script produced.
type Result struct {
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode *int   `json:"exit_code"`
	TimedOut bool   `json:"timed_out"`
	// Signal names the signal that ended the process ("SIGKILL"), when
	// ExitCode is nil.
	Signal          string `json:"signal,omitempty"`
	StdoutTruncated bool   `json:"stdout_truncated,omitempty"`
	StderrTruncated bool   `json:"stderr_truncated,omitempty"`
}

// TimeoutBody is the error body of a run that timed out: the error and the
// output the script produced before it was killed.
type TimeoutBody struct {
	Error string `json:"error"`
	Result
}

// MsgTimedOut is the error message of a run that timed out.
const MsgTimedOut = "Script execution timed out"

// TimedOut is the error of a run that timed out (MsgTimedOut): its answer
// carries what the run wrote (ResultErrorBody).
func TimedOut() error { return Errorf(ErrTimeout, "%s", MsgTimedOut) }

// ResultErrorBody is the body of the answer to a run that did not end by
// itself (it timed out, or was cancelled) with what it wrote until then:
// err's message and the result's fields. Every such answer is built here,
// over NATS and HTTP alike.
func ResultErrorBody(err error, res Result) []byte {
	body, _ := json.Marshal(TimeoutBody{Error: Message(err), Result: res})
	return body
}

// Script is a stored script as the catalog answers it. Version is the
// Version of its code.
type Script struct {
	Name    string `json:"name"`
	Code    string `json:"code"`
	Version string `json:"version"`
}

// CreateRequest is the body of script.create and POST /scripts.
type CreateRequest struct {
	Name *string `json:"name"`
	Code *string `json:"code"`
}

// UpdateRequest is the body of script.update.<name> and PUT /scripts/{name}.
type UpdateRequest struct {
	Code *string `json:"code"`
}

// MultiResult is the answer of a run of several scripts.
type MultiResult struct {
	Results map[string]json.RawMessage `json:"results"`
}

// DecodeRunRequest parses a run request body. An empty body (or JSON null)
// is an empty request. Errors wrap ErrBadRequest and say what is wrong.
func DecodeRunRequest(body []byte) (RunRequest, error) {
	var req RunRequest
	if isEmpty(body) {
		return req, nil
	}
	var raw map[string]json.RawMessage
	if err := decodeStrict(body, &raw); err != nil {
		return req, err
	}
	return runFromRaw(raw)
}

// runFromRaw takes the fields of a run request from a decoded object.
func runFromRaw(raw map[string]json.RawMessage) (RunRequest, error) {
	var req RunRequest
	if raw == nil {
		return req, nil
	}
	if err := knownFields(raw, runFields); err != nil {
		return req, err
	}
	if data, ok := raw["data"]; ok {
		req.Data = data
	}
	if args, ok := raw["args"]; ok && !bytes.Equal(bytes.TrimSpace(args), []byte("null")) {
		var elems []json.RawMessage
		if err := json.Unmarshal(args, &elems); err != nil {
			return RunRequest{}, Errorf(ErrBadRequest, `"args" must be an array of strings`)
		}
		req.Args = make([]string, len(elems))
		for i, e := range elems {
			field := fmt.Sprintf(`"args"[%d]`, i)
			a, err := stringValue(e, field, `"args" must be an array of strings: `+field+` is not a string`)
			if err != nil {
				return RunRequest{}, err
			}
			if a == nil {
				return RunRequest{}, Errorf(ErrBadRequest, `"args" must be an array of strings: %s is null`, field)
			}
			if strings.IndexByte(*a, 0) >= 0 {
				return RunRequest{}, Errorf(ErrBadRequest, "%s contains a NUL byte, which a command line cannot carry", field)
			}
			req.Args[i] = *a
		}
	}
	return req, nil
}

// stringValue decodes a JSON string (nil for null). A string that is not
// one is the error typeMsg; so is an escape of half a UTF-16 surrogate
// pair (\ud800 alone), which names no character: decoding would turn it
// into U+FFFD and change the caller's text.
func stringValue(raw json.RawMessage, field, typeMsg string) (*string, error) {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, Errorf(ErrBadRequest, "%s", typeMsg)
	}
	if esc, ok := loneSurrogate(raw); ok {
		return nil, Errorf(ErrBadRequest, "%s contains %s, half of a UTF-16 surrogate pair, which is no character", field, esc)
	}
	return &s, nil
}

// loneSurrogate finds a \uXXXX escape in a JSON string token that is a
// surrogate without its other half.
func loneSurrogate(tok []byte) (string, bool) {
	hex4 := func(i int) (rune, bool) {
		if i+6 > len(tok) || tok[i] != '\\' || tok[i+1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(tok[i+2:i+6]), 16, 16)
		return rune(v), err == nil
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		if !ok {
			i++ // an escape of one character: \\, \", \n, ...
			continue
		}
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if lo, ok := hex4(i + 6); ok && lo >= 0xDC00 && lo < 0xE000 {
				i += 11
				continue
			}
			return string(tok[i : i+6]), true
		case r >= 0xDC00 && r < 0xE000:
			return string(tok[i : i+6]), true
		}
		i += 5
	}
	return "", false
}

// DecodeCreate parses a create request: both name and code are required.
func DecodeCreate(body []byte) (CreateRequest, error) {
	var req CreateRequest
	if isEmpty(body) {
		return req, Errorf(ErrBadRequest, `request body must be a JSON object with "name" and "code"`)
	}
	raw, err := decodeFields(body, "name", "code")
	if err != nil {
		return req, err
	}
	if req.Name, err = requiredString(raw, "name"); err != nil {
		return req, err
	}
	if req.Code, err = requiredString(raw, "code"); err != nil {
		return req, err
	}
	return req, nil
}

// DecodeUpdate parses an update request: code is required.
func DecodeUpdate(body []byte) (UpdateRequest, error) {
	var req UpdateRequest
	if isEmpty(body) {
		return req, Errorf(ErrBadRequest, `request body must be a JSON object with "code"`)
	}
	raw, err := decodeFields(body, "code")
	if err != nil {
		return req, err
	}
	req.Code, err = requiredString(raw, "code")
	return req, err
}

// decodeFields decodes a JSON object whose field names are all among
// fields, exactly as written ("Code" is not "code").
func decodeFields(body []byte, fields ...string) (map[string]json.RawMessage, error) {
	var raw map[string]json.RawMessage
	if err := decodeStrict(body, &raw); err != nil {
		return nil, err
	}
	return raw, knownFields(raw, fields)
}

// requiredString is the string field name of raw, which must be there and
// not null.
func requiredString(raw map[string]json.RawMessage, name string) (*string, error) {
	field := strconv.Quote(name)
	v, ok := raw[name]
	if !ok {
		return nil, Errorf(ErrBadRequest, "%s is required", field)
	}
	s, err := stringValue(v, field, fmt.Sprintf("invalid JSON body: field %s must be a string", field))
	if err == nil && s == nil {
		err = Errorf(ErrBadRequest, "%s is required", field)
	}
	return s, err
}

func isEmpty(body []byte) bool {
	t := bytes.TrimSpace(body)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// runFields are the fields of a run request.
var runFields = []string{"data", "args"}

// knownFields rejects a field of raw that is not one of known: a caller's
// typo ("arg") must not run the script without its arguments.
func knownFields(raw map[string]json.RawMessage, known []string) error {
	var unknown []string
	for k := range raw {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return Errorf(ErrBadRequest, "invalid JSON body: unknown field %q (the fields are %s)", unknown[0], quoteAll(known))
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// decodeStrict decodes exactly one JSON value, of UTF-8 text, into v,
// with messages that say what is wrong and where.
func decodeStrict(body []byte, v any) error {
	if !utf8.Valid(body) {
		at := 0
		for at < len(body) {
			r, size := utf8.DecodeRune(body[at:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			at += size
		}
		// JSON text is UTF-8 (RFC 8259); decoding would replace the
		// bytes and change what the caller sent.
		return Errorf(ErrBadRequest, "invalid JSON body: not valid UTF-8 at byte %d", at+1)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return Errorf(ErrBadRequest, "invalid JSON body: %s", describe(err, body))
	}
	if dec.More() {
		return Errorf(ErrBadRequest, "invalid JSON body: unexpected data after the JSON object")
	}
	return nil
}

func describe(err error, body []byte) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field != "" {
			return fmt.Sprintf("field %q must be %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
		}
		return fmt.Sprintf("expected a JSON object, not %s", typeErr.Value)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return syntaxAt(body, syntaxErr.Offset)
	}
	msg := err.Error()
	if msg == "unexpected EOF" {
		return "truncated JSON"
	}
	return strings.TrimPrefix(msg, "json: ")
}

// syntaxAt says where body stops being JSON: offset counts the bytes read
// up to and including the first that cannot be there. The decoder's own
// words ("in literal null (expecting 'u')") are about its state, not what
// the caller sent, so the character and what is around it are shown
// instead (whole characters: a window never splits one).
func syntaxAt(body []byte, offset int64) string {
	at := int(offset) - 1
	if at < 0 || at >= len(body) {
		return fmt.Sprintf("not valid JSON at byte %d", offset)
	}
	for at > 0 && !utf8.RuneStart(body[at]) {
		at--
	}
	_, size := utf8.DecodeRune(body[at:])
	from, to := max(at-16, 0), min(at+size+16, len(body))
	for from > 0 && !utf8.RuneStart(body[from]) {
		from--
	}
	for to < len(body) && !utf8.RuneStart(body[to]) {
		to++
	}
	return fmt.Sprintf("not valid JSON at byte %d (%q in %q)", offset, body[at:at+size], body[from:to])
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string", "ptr":
		return "a string"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return goKind
}
