//go:build unix

package mongotest

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on path, waiting for it, and returns
// the function that releases it. The lock goes with the process, so a
// build killed halfway does not leave it held.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
