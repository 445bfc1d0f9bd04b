package catalog

import "github.com/scripthost/scripthost/bus"

// MaxNameLen bounds a script name in bytes, so that a subject carrying it
// stays short.
const MaxNameLen = 128

// ValidateName checks a script name against the rule
// ^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.py$ and the MaxNameLen bound. A name
// that passes is a file name with no path in it and a valid NATS subject
// suffix (no wildcards, spaces or empty tokens). Errors wrap
// bus.ErrBadRequest.
func ValidateName(name string) error {
	if !validName(name) {
		return bus.Errorf(bus.ErrBadRequest,
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
