package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoServerCode: the device app is client code. It shares the wire
// types (package api) and the push protocol's device side (package notify)
// with the broker, and must link neither the HTTP framework nor the NATS
// server: a phone app has no use for them, and their weight and attack
// surface would come along.
func TestLinksNoServerCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, server := range []string{"github.com/gin-gonic/gin", "github.com/nats-io/nats-server/", "github.com/legalmfa/mfa/broker", "github.com/legalmfa/mfa/bus", "github.com/legalmfa/mfa/encoding", "github.com/legalmfa/mfa/schema"} {
			if dep == server || strings.HasPrefix(dep, server) {
				t.Errorf("the device app links %s", dep)
			}
		}
	}
}
