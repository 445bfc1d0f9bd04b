// Package bus owns scripthost's message bus: it starts the embedded NATS
// server, connects clients, and defines every subject name and header that
// travels between the HTTP bridge, the catalog, the executor nodes and the
// client, and how an error travels in a reply. No other package spells a
// subject. The bodies and the error kinds are package model's.
package bus
