// Package testutil is what the tests of several packages share: a poll
// with a deadline, the tests' Python interpreter, an embedded NATS server,
// logs sent to the test's log, the pid files of test scripts and a reader
// of server-sent events. Only test files import it.
package testutil
