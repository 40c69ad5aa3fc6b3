// Command parley is the Parley gateway: one binary whose subcommands run
// its roles (component, sip, relay) together or apart, and help operators
// check their configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/parleygw/parley/shared/config"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = ""

const usage = `usage: parley [command] [-c FILE]

Commands:
  all            run the component, the SIP side and the relay in one process (default)
  component      run the XMPP component only (split mode: needs store.backend = "redis")
  sip            run the SIP side only (split mode: needs store.backend = "redis")
  relay          run the media relay only
  check-config   read the configuration and explain every problem
  version        print the version

Without -c, built-in defaults serve a one-box install.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "all"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("parley "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	path := fs.String("c", "", "configuration file (TOML)")
	if err := fs.Parse(args); err != nil {
		return 2
	}

	switch cmd {
	case "version":
		fmt.Fprintln(stdout, "parley", buildVersion())
		return 0
	case "check-config":
		return checkConfig(*path, stdout, stderr)
	case "all", "component", "sip", "relay":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "parley: unknown command %q\n\n%s", cmd, usage)
		return 2
	}

	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "parley: configuration %s:\n%v\n", describe(*path), err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := runRoles(ctx, cmd, cfg, stderr); err != nil {
		var fatal *fatalError
		if errors.As(err, &fatal) {
			fmt.Fprintf(stderr, "parley: %v\n", fatal.err)
			return 1
		}
		fmt.Fprintf(stderr, "parley: %v\n", err)
		return 1
	}
	return 0
}

func checkConfig(path string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s has problems:\n%v\n", describe(path), err)
		return 1
	}
	if _, err := cfg.Component.LoadSecret(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", describe(path), err)
		return 1
	}
	fmt.Fprintf(stdout, "%s is valid: component serves %v, SIP side serves %v, store %s\n",
		describe(path), cfg.Component.Domains, cfg.SIP.Domains, cfg.Store.Backend)
	return 0
}

func describe(path string) string {
	if path == "" {
		return "the built-in defaults"
	}
	return path
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// fatalError is a configuration or environment problem that restarting
// will not cure; the message says what to fix.
type fatalError struct{ err error }

func (f *fatalError) Error() string { return f.err.Error() }
func (f *fatalError) Unwrap() error { return f.err }
