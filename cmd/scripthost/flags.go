package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// envPrefix starts the environment variable of every flag:
// --max-concurrent is also SCRIPTHOST_MAX_CONCURRENT.
const envPrefix = "SCRIPTHOST_"

// envName is the environment variable that sets a flag.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args, then sets every flag not given on the command
// line from its environment variable, if that is set.
func parseFlags(fs *flag.FlagSet, args []string) error {
	_, err := parseFlagsGiven(fs, args)
	return err
}

// parseFlagsGiven is parseFlags that also says which flags were given on
// the command line (not by the environment).
func parseFlagsGiven(fs *flag.FlagSet, args []string) (map[string]bool, error) {
	if err := parseArgs(fs, args); err != nil {
		return nil, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: invalid value for --%s (%s): %w", envName(f.Name), v, f.Name, f.Usage, serr)
			}
		}
	})
	return given, err
}

// errUsage is a command line the flag package has already explained.
var errUsage = errors.New("bad command line")

// parseArgs parses args with fs. A bad flag is answered in two lines (what
// is wrong, and where the flags are listed), not with the whole list,
// which only -h prints; its error wraps errUsage.
func parseArgs(fs *flag.FlagSet, args []string) error {
	full := fs.Usage
	if full == nil {
		full = func() {
			fmt.Fprintf(fs.Output(), "usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
	}
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = full
	switch {
	case errors.Is(err, flag.ErrHelp):
		full()
		return err
	case err != nil:
		fmt.Fprintf(fs.Output(), "Run '%s -h' for its flags.\n", fs.Name())
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return nil
}

// byteSize is a flag holding a size in bytes, written as 1048576, 1MiB,
// 64MiB, 512KiB, 1GiB, or with SI units (1MB = 1000000).
type byteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30},
	{"B", 1},
}

func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(strings.ToUpper(s), strings.ToUpper(u.suffix)) {
			s, mult = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("invalid size %q: want a number of bytes, e.g. 1048576 or 1MiB", s)
	}
	*b = byteSize(n * mult)
	return nil
}

// durationFlag is a time flag that takes a duration (30s, 1m30s, 500ms)
// or a plain number of seconds (30), as --max-cpu does.
type durationFlag struct{ d *time.Duration }

// durationVar defines a durationFlag on fs.
func durationVar(fs *flag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	fs.Var(durationFlag{p}, name, usage)
}

func (f durationFlag) String() string {
	if f.d == nil {
		return "0s"
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n < 0 || math.IsNaN(n) || n > math.MaxInt64/float64(time.Second) {
			return fmt.Errorf("invalid duration %q: want a duration like 30s or 1m30s, or seconds (30)", s)
		}
		*f.d = time.Duration(n * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a duration like 30s or 1m30s, or seconds (30)", s)
	}
	*f.d = d
	return nil
}
