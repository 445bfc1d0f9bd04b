package main

import "os"

// testRunAs is the run user of the tests' servers: root when the tests run
// as root (named, as the server demands), else the tests' own user.
func testRunAs() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	return ""
}
