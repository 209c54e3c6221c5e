package sdk

import (
	"context"
	"log/slog"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
)

var (
	pluginLogOnce sync.Once
	pluginHCLog   hclog.Logger
	pluginSlog    *slog.Logger
)

// Logger returns the plugin's logger. It writes JSON lines in hclog's format to the
// process's stderr, which certgate parses into its own log with level and attributes
// intact. Plugins log through it (or anything else that writes to stderr) and never to
// stdout, which belongs to go-plugin's handshake.
func Logger() *slog.Logger {
	initPluginLog()
	return pluginSlog
}

// initPluginLog creates the loggers on first use. It runs before plugin.Serve replaces
// os.Stderr with a pipe of its own, so the loggers keep the process's real stderr.
func initPluginLog() {
	pluginLogOnce.Do(func() {
		pluginHCLog = hclog.New(&hclog.LoggerOptions{
			Level:      hclog.Debug,
			Output:     os.Stderr,
			JSONFormat: true,
		})
		pluginSlog = slog.New(&hclogHandler{logger: pluginHCLog})
	})
}

// hclogHandler is a slog.Handler that writes through an hclog.Logger, so that plugin
// code can use log/slog while go-plugin's host still receives hclog JSON.
type hclogHandler struct {
	logger hclog.Logger
	attrs  []any  // key-value pairs from WithAttrs, keys already prefixed
	prefix string // group prefix from WithGroup, "group." per level
}

func (h *hclogHandler) Enabled(_ context.Context, level slog.Level) bool {
	return h.logger.GetLevel() <= hclogLevel(level)
}

func (h *hclogHandler) Handle(_ context.Context, r slog.Record) error {
	args := make([]any, 0, len(h.attrs)+2*r.NumAttrs())
	args = append(args, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		args = appendAttr(args, h.prefix, a)
		return true
	})
	h.logger.Log(hclogLevel(r.Level), r.Message, args...)
	return nil
}

func (h *hclogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	next := *h
	next.attrs = append([]any(nil), h.attrs...)
	for _, a := range attrs {
		next.attrs = appendAttr(next.attrs, h.prefix, a)
	}
	return &next
}

func (h *hclogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	next := *h
	next.prefix = h.prefix + name + "."
	return &next
}

// appendAttr flattens a into key-value pairs, naming members of groups "group.key".
func appendAttr(args []any, prefix string, a slog.Attr) []any {
	value := a.Value.Resolve()
	if value.Kind() == slog.KindGroup {
		groupPrefix := prefix
		if a.Key != "" {
			groupPrefix = prefix + a.Key + "."
		}
		for _, member := range value.Group() {
			args = appendAttr(args, groupPrefix, member)
		}
		return args
	}
	if a.Key == "" {
		return args
	}
	return append(args, prefix+a.Key, value.Any())
}

// hclogLevel maps a slog level to the hclog level at or below it.
func hclogLevel(level slog.Level) hclog.Level {
	switch {
	case level >= slog.LevelError:
		return hclog.Error
	case level >= slog.LevelWarn:
		return hclog.Warn
	case level >= slog.LevelInfo:
		return hclog.Info
	case level >= slog.LevelDebug:
		return hclog.Debug
	default:
		return hclog.Trace
	}
}
