//go:build linux

package main

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// openLoopGCPercent lets this process's heap grow to eleven times what is
// live before it collects, during an open-loop phase. The tool's live heap
// is mostly its simulated devices' connection buffers (about 64 KiB
// each); at Go's default a collection came every two seconds of load,
// marking for 40–70 ms with devices and clients stalled in assists, and in
// the latency figures that showed as tens of milliseconds the broker had
// not added. With this headroom a ten-second phase passes without one.
const openLoopGCPercent = 1000

// holdCollections collects this process's garbage now and makes the next
// collection wait for openLoopGCPercent, bounded by a memory limit of a
// quarter of the memory available (at most 4 GiB); the returned function
// restores the collector. Only open-loop phases use it: a heap that
// grows costs this process CPU in fresh spans, which a phase at full load
// takes from the server it measures. GOGC or GOMEMLIMIT in the
// environment win: whoever set them meant it.
func holdCollections() (restore func()) {
	runtime.GC()
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	limit := int64(1 << 30)
	if avail, ok := meminfo("MemAvailable"); ok {
		limit = min(max(avail/4, 256<<20), 4<<30)
	}
	oldLimit := debug.SetMemoryLimit(limit)
	oldPercent := debug.SetGCPercent(openLoopGCPercent)
	return func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	}
}

// meminfo is a field of /proc/meminfo, such as MemTotal or MemAvailable,
// in bytes.
func meminfo(name string) (int64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == name+":" {
			kib, err := strconv.ParseInt(fields[1], 10, 64)
			return kib << 10, err == nil
		}
	}
	return 0, false
}
