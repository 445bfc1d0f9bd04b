// Package bus owns scripthost's message bus: it starts the embedded NATS
// server, connects clients, and defines every subject name, wire type and
// error code that travels between the HTTP bridge, the catalog and the
// executor nodes. No other package spells a subject.
package bus
