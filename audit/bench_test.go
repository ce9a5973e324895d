package audit

import (
	"fmt"
	"testing"
)

// BenchmarkRecord is the cost of one durable event: a line written and
// fsynced, alone (parallelism 1) and with concurrent writers sharing
// fsyncs, as concurrent decisions do.
func BenchmarkRecord(b *testing.B) {
	for _, writers := range []int{1, 16, 64} { // times GOMAXPROCS goroutines
		b.Run(fmt.Sprintf("parallelism=%d", writers), func(b *testing.B) {
			w, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			e := Event{Kind: KindMFA, Request: "2ruvay3ctck5ed32mnukywpy5t", Person: "f2afbe21d6ab1416", Code: "approved", Decision: "approve"}
			b.SetParallelism(writers)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := w.Record(e); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
