// Package httpbridge serves scripthost's REST API. It holds no script
// state: each endpoint becomes one or more requests on the bus, and the
// answers are mapped to HTTP status codes in one place (errors.go).
package httpbridge
