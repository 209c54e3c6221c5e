package backends

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter is an hclog.Logger that writes to a *slog.Logger. go-plugin logs its own
// events and every line a plugin writes to stderr through the hclog.Logger of its
// client config, so this adapter brings both into certgate's log. Lines that a plugin
// wrote as hclog JSON arrive with their level and attributes.
type hclogAdapter struct {
	logger  *slog.Logger
	name    string
	implied []any
}

func newHCLogAdapter(logger *slog.Logger) hclog.Logger {
	return &hclogAdapter{logger: logger}
}

// slogLevel maps an hclog level; hclog's Trace sits below slog's Debug.
func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	attrs := make([]any, 0, 2+len(a.implied)+len(args))
	if a.name != "" {
		attrs = append(attrs, logKeyLogger, a.name)
	}
	attrs = append(attrs, a.implied...)
	attrs = append(attrs, args...)
	a.logger.Log(context.Background(), slogLevel(level), msg, attrs...)
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) enabled(level hclog.Level) bool {
	return a.logger.Enabled(context.Background(), slogLevel(level))
}

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []any { return append([]any(nil), a.implied...) }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	next := *a
	next.implied = append(append([]any(nil), a.implied...), args...)
	return &next
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	next := *a
	if a.name != "" {
		next.name = a.name + "." + name
	} else {
		next.name = name
	}
	return &next
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	next := *a
	next.name = name
	return &next
}

// SetLevel does nothing: the level is the slog handler's, which certgate configures.
func (a *hclogAdapter) SetLevel(hclog.Level) {}

// GetLevel returns the lowest level the slog handler accepts. go-plugin reads it to
// skip parsing plugin lines that would be dropped anyway.
func (a *hclogAdapter) GetLevel() hclog.Level {
	for _, level := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.enabled(level) {
			return level
		}
	}
	return hclog.Off
}

func (a *hclogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	logger := a.logger
	if a.name != "" {
		logger = logger.With(logKeyLogger, a.name)
	}
	return slog.NewLogLogger(logger.With(a.implied...).Handler(), slog.LevelInfo)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(opts).Writer()
}
