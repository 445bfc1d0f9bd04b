package model

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// MaxNameLen bounds a script name in bytes, so that a subject carrying it
// stays short.
const MaxNameLen = 128

// ValidateName checks a script name against the rule
// ^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.py$ and the MaxNameLen bound. A name
// that passes is a file name with no path in it and a valid NATS subject
// suffix (no wildcards, spaces or empty tokens). Errors wrap
// ErrBadRequest.
func ValidateName(name string) error {
	if !validName(name) {
		return Errorf(ErrBadRequest,
			"invalid script name %q: names are letters, digits, '_', '-' and dots, end in .py, at most %d bytes",
			truncate(name, 2*MaxNameLen), MaxNameLen)
	}
	return nil
}

// validName is the name rule as a byte scan: it runs for every request, so
// it avoids the regexp engine (the tests hold it to the regexp).
func validName(name string) bool {
	if len(name) > MaxNameLen || len(name) < len("x.py") || name[len(name)-3:] != ".py" {
		return false
	}
	return dottedTokens(name)
}

// ValidateFileName checks the name of a data file (a file beside the
// scripts that they read): letters, digits, '_' and '-' in dot-separated
// parts, at most MaxNameLen bytes, and not a script's name (.py). Such a
// name is a file name with no path in it and a valid key of a JetStream
// key-value bucket. Errors wrap ErrBadRequest.
func ValidateFileName(name string) error {
	if !validFileName(name) {
		return Errorf(ErrBadRequest,
			"invalid data file name %q: names are letters, digits, '_', '-' and dots, not ending in .py, at most %d bytes",
			truncate(name, 2*MaxNameLen), MaxNameLen)
	}
	return nil
}

func validFileName(name string) bool {
	if name == "" || len(name) > MaxNameLen || strings.HasSuffix(name, ".py") {
		return false
	}
	return dottedTokens(name)
}

// Version is the version of a script's content: the first 16 hex digits of
// its SHA-256.
func Version(code []byte) string {
	sum := sha256.Sum256(code)
	return VersionOfSum(sum[:])
}

// VersionOfSum is the Version of the content whose SHA-256 is sum, for
// content hashed as it is read.
func VersionOfSum(sum []byte) string { return hex.EncodeToString(sum[:8]) }

// dottedTokens says whether name is one or more non-empty tokens of
// [A-Za-z0-9_-] joined by dots: the part of the rule that script names and
// data file names share.
func dottedTokens(name string) bool {
	tokenLen := 0
	for i := 0; i < len(name); i++ {
		switch b := name[i]; {
		case b == '.':
			if tokenLen == 0 {
				return false
			}
			tokenLen = 0
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '_', b == '-':
			tokenLen++
		default:
			return false
		}
	}
	return tokenLen > 0
}

// truncate keeps error messages bounded when a caller sends a huge name.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
