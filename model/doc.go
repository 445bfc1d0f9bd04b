// Package model is scripthost's script model: the name rule, scripts and
// their versions, run requests and results, jobs, and the error kinds with
// their status codes. It imports only the standard library, so that the
// bus, the catalog, the executor, the HTTP bridge and the client share one
// definition of each without pulling in the NATS server.
package model
