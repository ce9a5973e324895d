package broker

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"
)

// recoverPanic turns a panic into a logged internal-error answer, so one
// bad request can never take the broker down.
func (b *Broker) recoverPanic(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			b.log.Error("panic while handling a request", "path", c.Request.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				b.fail(c, "", fmt.Errorf("panic: %v", v))
			}
			c.Abort()
		}
	}()
	c.Next()
}

// accessLog writes one line per request. For MFA requests it adds the
// request ID, the outcome code and a keyed hash of the person, never the
// personal number itself.
func (b *Broker) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	b.logAccess(c, start)
}

// logAccess is apart from accessLog, whose frame stays on the stack of a
// request waiting for a person: see handleMFA.
func (b *Broker) logAccess(c *gin.Context, start time.Time) {
	level := slog.LevelInfo
	if c.Writer.Status() >= 500 && c.Writer.Status() != statusClientClosedRequest {
		level = slog.LevelError
	}
	if !b.log.Enabled(c.Request.Context(), level) {
		return
	}
	remote := c.ClientIP()
	if remote == "" {
		remote = "local" // the operator socket has no IP address
	}
	attrs := []slog.Attr{
		slog.String("method", c.Request.Method),
		slog.String("path", c.FullPath()),
		slog.Int("status", c.Writer.Status()),
		slog.Duration("duration", time.Since(start)),
		slog.String("remote", remote),
	}
	if v, ok := c.Get(recordKey); ok {
		rec := v.(*mfaRecord)
		attrs = append(attrs,
			slog.String("request", rec.requestID),
			slog.String("code", rec.code),
			slog.String("encoding", rec.format.String()),
			slog.Bool("signed", rec.signed),
			slog.Int("devices", rec.devices),
		)
		if rec.waited > 0 {
			attrs = append(attrs, slog.Duration("waited", rec.waited))
		}
		if rec.pnr != "" {
			attrs = append(attrs, slog.String("person", rec.pnr))
		}
	}
	b.log.LogAttrs(c.Request.Context(), level, "http", attrs...)
}
