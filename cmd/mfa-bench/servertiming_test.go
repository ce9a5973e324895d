//go:build linux

package main

import (
	"testing"
	"time"
)

func TestServerTiming(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header    string
		own, wait time.Duration
		ok        bool
	}{
		{`broker;desc="broker's own work";dur=0.412, device;desc="push to answer";dur=100.873`, 412 * time.Microsecond, 100873 * time.Microsecond, true},
		{`device;dur=2, broker;dur=1.5`, 1500 * time.Microsecond, 2 * time.Millisecond, true},
		{`broker;desc="broker's own work";dur=0.412`, 0, 0, false},
		{`broker;dur=x, device;dur=1`, 0, 0, false},
		{`broker;dur=-1, device;dur=1`, 0, 0, false},
		{`broker, device`, 0, 0, false},
		{``, 0, 0, false},
	} {
		own, wait, ok := serverTiming(tc.header)
		if own != tc.own || wait != tc.wait || ok != tc.ok {
			t.Errorf("serverTiming(%q) = %s, %s, %t; want %s, %s, %t", tc.header, own, wait, ok, tc.own, tc.wait, tc.ok)
		}
	}
}

func FuzzServerTiming(f *testing.F) {
	f.Add(`broker;desc="broker's own work";dur=0.412, device;desc="push to answer";dur=100.873`)
	f.Add(`broker;dur=1e400, device;dur=NaN`)
	f.Fuzz(func(t *testing.T, header string) {
		own, wait, ok := serverTiming(header)
		if ok && (own < 0 || wait < 0) {
			t.Fatalf("serverTiming(%q) = %s, %s: negative", header, own, wait)
		}
	})
}
