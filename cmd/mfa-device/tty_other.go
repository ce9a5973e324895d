//go:build !linux

package main

// flushInput is a no-op where flushing terminal input is not wired up;
// the prompt UI's minimum reading time still guards against typed-ahead
// answers.
func flushInput(int) func() { return func() {} }
