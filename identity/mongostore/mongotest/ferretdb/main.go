// Command ferretdb runs FerretDB v1 with its SQLite backend: a MongoDB
// wire-protocol server in one process, with no other software, for the
// tests of the MongoDB identity store (package mongotest builds and starts
// it; nothing in the product uses it).
//
// It is a module of its own so that FerretDB and its dependencies never
// enter the product's go.mod, and it uses the embeddable package
// github.com/FerretDB/FerretDB/ferretdb rather than upstream's cmd/ferretdb,
// whose version check panics when built as a dependency.
//
// Usage:
//
//	ferretdb -listen 127.0.0.1:0 -dir /path/to/data [-watch-stdin]
//
// Once it accepts connections it prints one line to standard output:
//
//	ferretdb ready mongodb://127.0.0.1:PORT/
//
// It stops cleanly on SIGTERM or SIGINT and, with -watch-stdin, when its
// standard input reaches end of file, so that it dies with the process that
// started it even if that process is killed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "TCP address to listen on (port 0 picks a free port)")
	dir := flag.String("dir", "", "directory for the SQLite databases (created if missing; required)")
	watchStdin := flag.Bool("watch-stdin", false, "exit when standard input is closed (the parent died)")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	flag.Parse()

	if err := run(*listen, *dir, *watchStdin, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run(listen, dir string, watchStdin bool, logLevel string) error {
	if dir == "" {
		return errors.New("-dir is required")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return err
	}

	// Port 0 would let FerretDB pick a port, but then MongoDBURI can only
	// be read after Run has started; resolving it here keeps the address
	// printable before Run and lets a restart reuse the same one.
	addr, err := freeAddr(listen)
	if err != nil {
		return err
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: addr},
		Logger:   logger,
		Handler:  "sqlite",
		// WAL (FerretDB's default) with synchronous=NORMAL: a write
		// FerretDB acknowledged has been written to the WAL file, so
		// killing this process loses none; only a crash of the machine
		// could lose the last ones, which fsyncing every commit (FULL)
		// would prevent at several times the cost per write. This is a
		// test server: tests kill processes, not machines.
		SQLiteURL: (&urlFile{abs}).String() + "?_pragma=synchronous(normal)",
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if watchStdin {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	if err := waitListening(ctx, addr, 30*time.Second); err != nil {
		stop()
		<-done
		return err
	}
	fmt.Printf("ferretdb ready mongodb://%s/\n", addr)
	return <-done
}

// urlFile renders a directory as the file: URI FerretDB's SQLite backend
// wants: absolute, ending in a slash.
type urlFile struct{ dir string }

func (u *urlFile) String() string {
	d := filepath.ToSlash(u.dir)
	if d[len(d)-1] != '/' {
		d += "/"
	}
	return "file:" + d
}

func freeAddr(listen string) (string, error) {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", err
	}
	return addr, nil
}

func waitListening(ctx context.Context, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %v: %w", addr, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
