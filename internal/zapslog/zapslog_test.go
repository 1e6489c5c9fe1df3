package zapslog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestSlogCore(t *testing.T) {
	var buf bytes.Buffer
	core := Core{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	zl := zap.New(core).Named("obtain").With(zap.String("identifier", "a.test"))
	zl.Debug("hidden")
	zl.Warn("could not obtain", zap.String("issuer", "ca"))
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "level=WARN") || !strings.Contains(out, "identifier=a.test") ||
		!strings.Contains(out, "issuer=ca") || !strings.Contains(out, "logger=obtain") {
		t.Errorf("slog output %q", out)
	}
}
