package service

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lockFileName is the file in the data directory whose lock says a broker
// runs on it.
const lockFileName = "broker.lock"

// errDataDirInUse: another broker runs on the data directory.
var errDataDirInUse = errors.New("is in use by another broker")

// takeDataDir creates the data directory if needed and locks it for this
// process: two brokers on one directory would share its store, JetStream
// files and operator socket. The lock is the operating system's, so a
// broker that dies leaves nothing that stops the next one. release gives
// it back.
func takeDataDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the data directory %s: %w", dir, unwrapPath(err))
	}
	path := filepath.Join(dir, lockFileName)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) || isReadOnly(err) {
				return nil, fmt.Errorf("the data directory %s is not writable: %w", dir, unwrapPath(err))
			}
			return nil, fmt.Errorf("data directory %s: %w", dir, err)
		}
		held, err := lockFile(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock the data directory %s: %w", dir, err)
		}
		if !held {
			owner := readOwner(f)
			f.Close()
			return nil, fmt.Errorf("the data directory %s %w%s (stop it, or give this one another --data-dir)", dir, errDataDirInUse, owner)
		}
		// A broker that stopped between our open and our lock removed the
		// file: the lock we hold is on a name nobody else will open.
		if same, err := stillNamed(f, path); err != nil || !same {
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("lock the data directory %s: %w", dir, err)
			}
			continue
		}
		f.Truncate(0)
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		return func() {
			// Removed while still locked, so no other broker can have
			// opened it and be waiting on a file that is gone.
			os.Remove(path)
			f.Close()
		}, nil
	}
}

// readOwner names the process that holds the lock, if it wrote its pid.
func readOwner(f *os.File) string {
	b := make([]byte, 16)
	n, _ := f.ReadAt(b, 0)
	pid := strings.TrimSpace(string(b[:n]))
	if _, err := strconv.Atoi(pid); err != nil {
		return ""
	}
	return " (pid " + pid + ")"
}

// stillNamed reports whether path is still the file f has open.
func stillNamed(f *os.File, path string) (bool, error) {
	open, err := f.Stat()
	if err != nil {
		return false, err
	}
	named, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(open, named), nil
}

// unwrapPath drops the path from a *fs.PathError whose message would
// repeat what the caller's says.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
