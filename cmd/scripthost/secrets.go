package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
)

// Secrets are read from files (--token-file etc.) or the environment
// (SCRIPTHOST_TOKEN etc.), which other users cannot read. On the command
// line they still work, but every local user can read them in
// /proc/<pid>/cmdline: the server warns at start.

// secretSources are the --<secret>-file flags, and the secrets given on
// the command line.
type secretSources struct {
	secretFiles   map[string]*string
	onCommandLine []string
}

// secretFlag pairs a secret's flag with the flag naming its file.
type secretFlag struct {
	name  string
	value *string
}

// secretFlags are the secrets of the security flags that are set on fs.
func (c *securityConfig) secretFlags(fs *flag.FlagSet) []secretFlag {
	var out []secretFlag
	for _, s := range []secretFlag{
		{"token", &c.Token}, {"run-token", &c.RunToken},
		{"nats-password", &c.NATSPassword}, {"nats-run-password", &c.NATSRunPassword},
	} {
		if fs.Lookup(s.name) != nil {
			out = append(out, s)
		}
	}
	return out
}

// fileFlags adds --<secret>-file for every secret flag of fs.
func (c *nodeConfig) fileFlags(fs *flag.FlagSet) {
	if c.secretFiles == nil {
		c.secretFiles = map[string]*string{}
	}
	for _, s := range c.secretFlags(fs) {
		path := new(string)
		c.secretFiles[s.name] = path
		fs.StringVar(path, s.name+"-file", "", "file holding --"+s.name+" (the command line is readable by every local user)")
	}
}

// parse parses a node command's flags (and their environment variables),
// refuses positional arguments, and reads the secrets given as files.
func (c *nodeConfig) parse(fs *flag.FlagSet, args []string, command string) error {
	given, err := parseFlagsGiven(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", command, fs.Args())
	}
	return c.readSecrets(fs, given)
}

// readSecrets fills the secrets given as files, and notes those given on
// the command line (given) for warnOnCommandLine.
func (c *nodeConfig) readSecrets(fs *flag.FlagSet, given map[string]bool) error {
	for _, s := range c.secretFlags(fs) {
		path := *c.secretFiles[s.name]
		switch {
		case path != "" && *s.value != "":
			return fmt.Errorf("--%s and --%s-file: give one of them", s.name, s.name)
		case path != "":
			data, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("--%s-file: %w", s.name, err)
			}
			v := strings.TrimRight(string(data), "\r\n")
			if v == "" {
				return fmt.Errorf("--%s-file %s is empty", s.name, path)
			}
			*s.value = v
		case given[s.name]:
			c.onCommandLine = append(c.onCommandLine, "--"+s.name)
		}
	}
	if given["nats"] {
		if u := natsURLPassword(fs); u {
			c.onCommandLine = append(c.onCommandLine, "the password in --nats")
		}
	}
	return nil
}

// natsURLPassword tells whether the --nats URL of fs carries a password.
func natsURLPassword(fs *flag.FlagSet) bool {
	f := fs.Lookup("nats")
	if f == nil {
		return false
	}
	for _, p := range strings.Split(f.Value.String(), ",") {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			return true
		}
	}
	return false
}

// warnOnCommandLine warns of secrets every local user can read.
func (c *nodeConfig) warnOnCommandLine(log *slog.Logger) {
	if len(c.onCommandLine) == 0 {
		return
	}
	log.Warn("secrets given on the command line: every local user can read them (ps, /proc/<pid>/cmdline); give them in files (--token-file, --run-token-file, --nats-password-file, --nats-run-password-file) or in the environment (SCRIPTHOST_TOKEN, ...)",
		"secrets", strings.Join(c.onCommandLine, ", "))
}
