package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/emiago/sipgo/sip"
	"github.com/redis/go-redis/v9"
)

// routeLibraryLogs sends what sipgo and go-redis log through their own
// package-level loggers into Parley's structured log, so an operator finds
// everything in one place and in one format. Those loggers are the
// libraries' global state; main is the one place allowed to set it.
func routeLibraryLogs(log *slog.Logger) {
	sip.SetDefaultLogger(log.With("lib", "sipgo"))
	redis.SetLogger(redisLog{log.With("lib", "go-redis")})
}

type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.log.Log(ctx, slog.LevelWarn, fmt.Sprintf(format, v...))
}
