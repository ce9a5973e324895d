// Package version says which build is running, for mfa-broker version,
// mfa-device version and GET /Broker: the module version a release was
// built at, or else the source revision Go recorded.
package version

import "runtime/debug"

// String is the running build's version: a module version such as
// "v1.4.0" when built from a release, else "devel" with the first twelve
// digits of the commit and "+dirty" for uncommitted changes, as go build
// records them, or plain "devel" when it recorded none (go run, tests).
func String() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var revision, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if revision == "" {
		return "devel"
	}
	return "devel-" + revision[:min(12, len(revision))] + dirty
}
