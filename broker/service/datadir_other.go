//go:build !unix

package service

import "os"

// lockFile has no lock to take where flock is missing; the store's own
// file lock and the operator socket still refuse a second broker.
func lockFile(*os.File) (bool, error) { return true, nil }

func isReadOnly(error) bool { return false }
