package service

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestConnectionLimit: up to the cap connections are served; one more is
// answered 503 too-busy at once and closed; a connection that closes gives
// its place back, once however often it is closed.
func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := limitConnections(raw, 2, true, slog.New(slog.DiscardHandler))
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	served := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("a connection within the cap was not accepted")
		}
		return nil
	}
	dial()
	first := served()
	dial()
	served()

	over := dial()
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(over), nil)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the cap: %v, %v", resp, err)
	}
	select {
	case <-accepted:
		t.Fatal("a connection over the cap was handed to the server")
	default:
	}

	first.Close()
	first.Close() // twice: the place is given back once
	dial()
	served()
	third := dial()
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(third), nil); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a double close freed two places: %v, %v", resp, err)
	}
}
