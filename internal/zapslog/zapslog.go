// Package zapslog sends the logs of libraries that log with zap (certmagic) to slog.
package zapslog

import (
	"context"
	"log/slog"
	"maps"
	"slices"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a zap logger that writes to log.
func New(log *slog.Logger) *zap.Logger { return zap.New(Core{Log: log}) }

// Core is a zapcore.Core that writes to Log.
type Core struct {
	Log    *slog.Logger
	fields []zapcore.Field
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// Enabled implements zapcore.Core.
func (c Core) Enabled(l zapcore.Level) bool {
	return c.Log.Enabled(context.Background(), slogLevel(l))
}

// With implements zapcore.Core.
func (c Core) With(fields []zapcore.Field) zapcore.Core {
	return Core{Log: c.Log, fields: append(slices.Clip(c.fields), fields...)}
}

// Check implements zapcore.Core.
func (c Core) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Write implements zapcore.Core; certmagic's lock chatter goes to debug.
func (c Core) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields)+1)
	if e.LoggerName != "" {
		attrs = append(attrs, slog.String("logger", e.LoggerName))
	}
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		attrs = append(attrs, slog.Any(k, enc.Fields[k]))
	}
	level := slogLevel(e.Level)
	switch e.Message {
	case "acquiring lock", "lock acquired", "releasing lock", "lock released",
		"started background certificate maintenance", "stopped background certificate maintenance":
		level = min(level, slog.LevelDebug) // every issuance says these; they are noise at info
	}
	c.Log.LogAttrs(context.Background(), level, e.Message, attrs...)
	return nil
}

// Sync implements zapcore.Core.
func (Core) Sync() error { return nil }
