package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

// envOf makes a getenv from pairs.
func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// result is a finished command.
type result struct {
	stdout, stderr string
	err            error
}

// runCmd runs the program in-process, as a script would.
func runCmd(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr, envOf(env))
	return result{stdout: stdout.String(), stderr: stderr.String(), err: err}
}
