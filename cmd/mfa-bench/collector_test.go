//go:build linux

package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestHoldCollections is not parallel: the collector's settings belong to
// the whole process.
func TestHoldCollections(t *testing.T) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOGC or GOMEMLIMIT is set, and holdCollections leaves the collector alone then")
	}
	before := debug.SetGCPercent(77)
	defer debug.SetGCPercent(before)
	limitBefore := debug.SetMemoryLimit(-1)

	restore := holdCollections()
	held := debug.SetGCPercent(openLoopGCPercent)
	heldLimit := debug.SetMemoryLimit(-1)
	restore()
	after := debug.SetGCPercent(before)
	afterLimit := debug.SetMemoryLimit(-1)

	if held != openLoopGCPercent {
		t.Errorf("while held, GC percent %d, want %d", held, openLoopGCPercent)
	}
	if heldLimit < 256<<20 || heldLimit > 4<<30 {
		t.Errorf("while held, memory limit %d bytes, want between 256 MiB and 4 GiB", heldLimit)
	}
	if after != 77 || afterLimit != limitBefore {
		t.Errorf("restored GC percent %d and limit %d, want 77 and %d", after, afterLimit, limitBefore)
	}
}

func TestMeminfo(t *testing.T) {
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip("no /proc/meminfo here")
	}
	avail, ok := meminfo("MemAvailable")
	if !ok || avail < 1<<20 {
		t.Fatalf("meminfo(MemAvailable) = %d, %v; want at least a MiB", avail, ok)
	}
}
