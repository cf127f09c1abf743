// Command outrigger is the Outrigger sidecar gateway.
//
// This file holds flags, the configuration file, wiring and signals only;
// everything else lives in the packages it wires.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/gateway"
	"github.com/outrigger-gw/outrigger/internal/demo"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

//go:embed demo.yaml
var demoConfig []byte

// Exit codes.
const (
	exitOK     = 0
	exitFail   = 1
	exitConfig = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv))
}

const usage = `Outrigger — a service-discovery-driven sidecar gateway.

Usage:
  outrigger run --config FILE [flags]     run the gateway
  outrigger validate --config FILE        check a configuration file and exit
  outrigger demo [flags]                  run on a built-in config with two demo backends
  outrigger version                       print the version

Run "outrigger COMMAND --help" for a command's flags.
`

func run(args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitConfig
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr, env)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr, env)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr, env)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "outrigger %s\n", version)
		return exitOK
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "outrigger: unknown command %q\n\n%s", args[0], usage)
		return exitConfig
	}
}

// overrides are the flags that take precedence over the file.
type overrides struct {
	proxyListen, adminListen, logLevel string
}

func (o *overrides) register(fs *flag.FlagSet) {
	fs.StringVar(&o.proxyListen, "proxy-listen", "", "proxy listen address host:port (overrides proxy.listen)")
	fs.StringVar(&o.adminListen, "admin-listen", "", "admin listen address host:port (overrides admin.listen)")
	fs.StringVar(&o.logLevel, "log-level", "", "debug|info|warn|error (overrides log.level)")
}

func (o *overrides) apply(f *config.File) error {
	for _, a := range []string{o.proxyListen, o.adminListen} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("listen address %q: %v", a, err)
		}
	}
	if o.proxyListen != "" {
		// One plaintext listener replaces proxy.listen (h2c when
		// proxy.h2c is on).
		f.Proxy.Listen = o.proxyListen
		f.Proxy.Listeners = []config.Listener{{Address: o.proxyListen, HTTP2: f.Proxy.H2C}}
	}
	if o.adminListen != "" {
		f.Admin.Listen = o.adminListen
	}
	if o.logLevel != "" {
		if _, err := zerolog.ParseLevel(o.logLevel); err != nil || o.logLevel == "" {
			return fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
		}
		f.Log.Level = o.logLevel
	}
	return nil
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: outrigger %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; done reports that the command should exit with
// code (for --help or a bad flag).
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, true
		}
		return exitConfig, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitConfig, true
	}
	return 0, false
}

// loader loads and prepares a configuration; used at start and on SIGHUP.
type loader func() (*config.File, error)

func fileLoader(path string, ov *overrides, env func(string) (string, bool)) loader {
	return func() (*config.File, error) {
		f, err := config.Load(path, env)
		if err != nil {
			return nil, err
		}
		return f, ov.apply(f)
	}
}

func cmdValidate(args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := newFlagSet("validate", "validate --config FILE", stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "outrigger validate: --config FILE is required")
		return exitConfig
	}
	f, err := config.Load(*path, env)
	if err == nil {
		_, err = gateway.New(f, gateway.Options{Log: zerolog.Nop(), Version: version, LookupEnv: env})
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	fmt.Fprintf(stdout, "%s: OK (%d upstreams, %d services, %d routes)\n", *path, len(f.Upstreams), len(f.Services), len(f.Routes))
	return exitOK
}

func cmdRun(args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := newFlagSet("run", "run --config FILE [flags]", stderr)
	path := fs.String("config", "", "configuration file (YAML); SIGHUP reloads it")
	var ov overrides
	ov.register(fs)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "outrigger run: --config FILE is required")
		return exitConfig
	}
	return serve(fileLoader(*path, &ov, env), env, stderr, nil)
}

func cmdDemo(args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := newFlagSet("demo", "demo [flags]", stderr)
	var ov overrides
	ov.register(fs)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	var backends []*demo.Backend
	defer func() {
		for _, b := range backends {
			_ = b.Close()
		}
	}()
	for _, name := range []string{"demo-a", "demo-b"} {
		b, err := demo.Start(name, "127.0.0.1:0")
		if err != nil {
			fmt.Fprintf(stderr, "outrigger demo: start backend: %v\n", err)
			return exitFail
		}
		backends = append(backends, b)
	}
	demoEnv := func(k string) (string, bool) {
		switch k {
		case "DEMO_BACKEND_A":
			return backends[0].Addr, true
		case "DEMO_BACKEND_B":
			return backends[1].Addr, true
		}
		return env(k)
	}
	load := func() (*config.File, error) {
		f, err := config.Parse("demo.yaml (built in)", demoConfig, demoEnv)
		if err != nil {
			return nil, err
		}
		return f, ov.apply(f)
	}
	ready := func(proxyAddr, adminAddr string) {
		fmt.Fprintf(stdout, `
Outrigger demo is running.
  proxy   http://%[1]s   route /mock -> upstream example_upstream
  admin   http://%[2]s   (Kong-style admin API: /upstreams, /services, /routes; /status, /metrics)
  targets %[3]s (demo-a) and %[4]s (demo-b), weight 100 each

Watch the responses alternate between the two backends:

  for i in 1 2 3 4; do curl -s http://%[1]s/mock/headers | grep -i -A1 '"backend"'; done

Press Ctrl-C to stop.
`, proxyAddr, adminAddr, backends[0].Addr, backends[1].Addr)
	}
	return serve(load, env, stderr, ready)
}

// serve runs the gateway until SIGINT/SIGTERM; SIGHUP reloads.
func serve(load loader, env func(string) (string, bool), stderr io.Writer, ready func(proxyAddr, adminAddr string)) int {
	f, err := load()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	log := newLogger(f.Log, stderr)
	g, err := gateway.New(f, gateway.Options{Log: log, Version: version, LookupEnv: env, LoadState: true})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	proxyLns, err := listenProxy(f.Proxy)
	if err != nil {
		log.Error().Err(err).Msg("proxy listener")
		return exitFail
	}
	adminLn, err := net.Listen("tcp", f.Admin.Listen)
	if err != nil {
		for _, ln := range proxyLns {
			ln.Close()
		}
		log.Error().Err(err).Msg("admin listener")
		return exitFail
	}
	listeners := make([]string, 0, len(proxyLns))
	for i, l := range f.Proxy.ListenersOrDefault() {
		l.Address = proxyLns[i].Addr().String()
		listeners = append(listeners, l.String())
	}
	log.Info().Str("proxy", proxyLns[0].Addr().String()).Strs("proxy_listeners", listeners).Str("admin", adminLn.Addr().String()).
		Str("version", version).Str("config", f.Path).Msg("outrigger started")
	if ready != nil {
		ready(proxyLns[0].Addr().String(), adminLn.Addr().String())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload(g, load, f, log)
			}
		}
	}()
	drain := f.Proxy.DrainTimeout
	if err := g.ServeListeners(ctx, proxyLns, adminLn, drain); err != nil {
		log.Error().Err(err).Msg("server failed")
		return exitFail
	}
	log.Info().Msg("outrigger stopped")
	return exitOK
}

func reload(g *gateway.Gateway, load loader, first *config.File, log zerolog.Logger) {
	start := time.Now()
	f, err := load()
	if err == nil {
		if !slices.EqualFunc(f.Proxy.ListenersOrDefault(), first.Proxy.ListenersOrDefault(), sameListener) || f.Admin.Listen != first.Admin.Listen {
			log.Warn().Msg("reload: listen addresses changed; that takes a restart, keeping the current listeners")
		}
		if a, b := f.Proxy, first.Proxy; a.IdleTimeout != b.IdleTimeout || a.HeaderTimeout != b.HeaderTimeout || a.MaxConnections != b.MaxConnections {
			log.Warn().Msg("reload: proxy idle_timeout, header_timeout or max_connections changed; that takes a restart, keeping the current values")
		}
		if a, b := f.Proxy, first.Proxy; a.SSLVerifyClient != b.SSLVerifyClient || a.SSLClientSubjectHeader != b.SSLClientSubjectHeader || a.SSLPollInterval != b.SSLPollInterval {
			log.Warn().Msg("reload: proxy ssl_verify_client, ssl_client_subject_header or ssl_poll_interval changed; that takes a restart, keeping the current values")
		}
		if !config.SameTracing(f.Tracing, first.Tracing) || f.Log.AccessLogSuccessSampleRatio != first.Log.AccessLogSuccessSampleRatio {
			log.Warn().Msg("reload: the tracing block or log.access_log_success_sample_ratio changed; that takes a restart, keeping the current values")
		}
		err = g.Apply(f)
	}
	if err != nil {
		log.Error().Str("error", strings.TrimSpace(err.Error())).Msg("reload failed; keeping the running configuration")
		// The certificate files are read again all the same.
		g.ReloadCertificates()
		return
	}
	log.Info().Uint64("generation", g.Status().ConfigGeneration).Dur("took", time.Since(start)).Msg("configuration reloaded")
}

// newLogger builds the process logger: JSON, or human console output when
// format is "console", or "auto" on a terminal.
func newLogger(c config.Log, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil || c.Level == "" {
		level = zerolog.InfoLevel
	}
	console := c.Format == "console"
	if c.Format == "auto" || c.Format == "" {
		if fd, ok := w.(interface{ Fd() uintptr }); ok {
			console = isatty.IsTerminal(fd.Fd())
		}
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// sameListener compares listeners but for their position in the file.
func sameListener(a, b config.Listener) bool {
	a.Pos, b.Pos = config.Pos{}, config.Pos{}
	return a == b
}
