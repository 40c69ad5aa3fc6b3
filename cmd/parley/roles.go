package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/parleygw/parley/component"
	"github.com/parleygw/parley/shared/address"
	"github.com/parleygw/parley/shared/config"
	"github.com/parleygw/parley/shared/opshttp"
	"github.com/parleygw/parley/shared/store"
	"github.com/parleygw/parley/shared/store/memstore"
	"github.com/parleygw/parley/shared/store/redisstore"
	"github.com/parleygw/parley/sipside"
)

// runRoles starts the roles cmd names and waits until ctx ends and they have
// drained, or one of them fails.
func runRoles(ctx context.Context, cmd string, cfg config.Config, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr)
	routeLibraryLogs(log)
	log.Info("parley starting", "role", cmd, "version", buildVersion(), "store", cfg.Store.Backend)

	if cmd == "relay" {
		return &fatalError{errors.New("the media relay role is not built yet: run `parley all`, `parley component` or `parley sip`")}
	}
	if cmd != "all" && cfg.Store.Backend == "memory" {
		return &fatalError{fmt.Errorf("`parley %s` runs one role of a split site: set store.backend = \"redis\" so the roles share state (or run `parley all`)", cmd)}
	}

	backend, err := openBackend(ctx, cfg.Store, log)
	if err != nil {
		return err
	}
	defer backend.Close()

	mapper, err := address.NewMapper(address.Config{
		SIPDomains:  cfg.Component.Domains,
		XMPPGateway: cfg.Component.GatewayDomain,
		XMPPDomains: cfg.SIP.Domains,
		SIPGateway:  cfg.SIP.GatewayDomain,
	})
	if err != nil {
		return &fatalError{fmt.Errorf("domains: %w", err)}
	}

	ops := opshttp.New(log)
	ops.AddCheck("store", backend.Ping)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	start := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := run(ctx)
			if err != nil && ctx.Err() == nil {
				errOnce.Do(func() { firstErr = fmt.Errorf("%s: %w", name, err) })
				cancel()
			}
		}()
	}

	if cmd == "all" || cmd == "component" {
		secret, err := cfg.Component.LoadSecret()
		if err != nil {
			return &fatalError{err}
		}
		c, err := component.New(cfg.Component, secret, component.Deps{
			Bus: backend, Store: backend, Mapper: mapper,
			Log:      log,
			Metrics:  ops.Registry,
			Instance: instanceName(cfg.Store, "component"),
		})
		if err != nil {
			return &fatalError{fmt.Errorf("component: %w", err)}
		}
		ops.AddCheck("component", readiness(c.Ready, "not connected to the XMPP server"))
		start("component", c.Run)
	}
	if cmd == "all" || cmd == "sip" {
		s, err := sipside.New(cfg.SIP, sipside.Deps{
			Bus: backend, Store: backend, Mapper: mapper,
			Log:      log,
			Metrics:  ops.Registry,
			Instance: instanceName(cfg.Store, "sip"),
		})
		if err != nil {
			return &fatalError{fmt.Errorf("sip: %w", err)}
		}
		ops.AddCheck("sip", readiness(s.Ready, "SIP listeners not up"))
		start("sip", s.Run)
	}
	if cfg.Metrics.Listen != "" {
		start("metrics", func(ctx context.Context) error { return ops.Run(ctx, cfg.Metrics.Listen) })
	}

	<-ctx.Done()
	log.Info("parley stopping: draining in-flight deliveries")
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		log.Warn("drain took longer than 30s; stopping anyway (unacknowledged events stay pending and are redelivered)")
	}
	if firstErr != nil {
		return firstErr
	}
	log.Info("parley stopped")
	return nil
}

func openBackend(ctx context.Context, cfg config.Store, log *slog.Logger) (store.Backend, error) {
	switch cfg.Backend {
	case "redis":
		b, err := redisstore.New(ctx, cfg.RedisURL, redisstore.Options{Logger: log.With("store", "redis")})
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", config.RedactURL(cfg.RedisURL), err)
		}
		return b, nil
	default:
		return memstore.New(memstore.Options{}), nil
	}
}

func readiness(ready func() bool, msg string) opshttp.Check {
	return func(context.Context) error {
		if !ready() {
			return errors.New(msg)
		}
		return nil
	}
}

// instanceName is this process's stable consumer name: a restarted process
// with the same name picks up what it left unacknowledged.
func instanceName(cfg config.Store, role string) string {
	if cfg.Instance != "" {
		return cfg.Instance + "/" + role
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return role + "@" + host
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(cfg.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
