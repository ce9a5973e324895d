package mongotest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// FerretDBVersion is the FerretDB release the test server is built from.
const FerretDBVersion = "v1.24.2"

// EnvCacheDir names the environment variable with the directory where the
// FerretDB binary is cached. The default is <os.UserCacheDir()>/legalmfa.
const EnvCacheDir = "MFA_FERRETDB_CACHE"

// EnvSourceDir names the environment variable with the path of the ferretdb
// module, for test binaries built with -trimpath, whose source paths are
// not known.
const EnvSourceDir = "MFA_FERRETDB_SRC"

var binary struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the path of the FerretDB command, building it first if no
// binary built from the current module files is cached. The build runs `go
// build` in the ferretdb module (its own go.mod and go.sum apply) with the
// go command found on PATH, and takes a few minutes on a fresh machine; the
// binary is named after a hash of the module's go.mod, go.sum and main.go,
// so a change to them rebuilds it. A file lock keeps concurrent test
// binaries (go test runs packages in parallel) from building it twice.
func Binary() (string, error) {
	binary.once.Do(func() { binary.path, binary.err = build() })
	return binary.path, binary.err
}

func build() (string, error) {
	src, err := sourceDir()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return "", fmt.Errorf("ferretdb module: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	sum := hex.EncodeToString(h.Sum(nil))[:16]

	cache, err := cacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "ferretdb-"+FerretDBVersion+"-"+sum)
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}

	unlock, err := lockFile(filepath.Join(cache, "ferretdb-build.lock"))
	if err != nil {
		return "", fmt.Errorf("lock the FerretDB build: %w", err)
	}
	defer unlock()
	// Another test binary may have built it while this one waited.
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}

	// go test puts its own toolchain first on the test binary's PATH.
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("no go command to build FerretDB with: %w", err)
	}
	tmp := fmt.Sprintf("%s.building-%d", bin, os.Getpid())
	start := time.Now()
	fmt.Fprintf(os.Stderr, "mongotest: building FerretDB %s into %s (once per machine; a few minutes on a fresh one)\n", FerretDBVersion, cache)
	cmd := exec.Command(goCmd, "build", "-trimpath", "-o", tmp, ".")
	cmd.Dir = src
	// The ferretdb module stands alone: no workspace, and go.sum may be
	// completed from the module proxy.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build in %s: %w\n%s", src, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		os.Remove(tmp)
		return "", err
	}
	fmt.Fprintf(os.Stderr, "mongotest: built FerretDB in %v\n", time.Since(start).Round(time.Second))
	// Binaries built from earlier module files are of no more use.
	if old, err := filepath.Glob(filepath.Join(cache, "ferretdb-v*-*")); err == nil {
		for _, o := range old {
			if o != bin && !strings.Contains(filepath.Base(o), ".building-") {
				os.Remove(o)
			}
		}
	}
	return bin, nil
}

func cacheDir() (string, error) {
	dir := os.Getenv(EnvCacheDir)
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir = filepath.Join(base, "legalmfa")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

// sourceDir finds the ferretdb module: next to this file when the test
// binary knows its source paths, else from MFA_FERRETDB_SRC, else by walking
// up from the working directory (a package directory under go test) to the
// repository root.
func sourceDir() (string, error) {
	ok := func(dir string) bool {
		_, err := os.Stat(filepath.Join(dir, "main.go"))
		return err == nil
	}
	if dir := os.Getenv(EnvSourceDir); dir != "" {
		if ok(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%s=%s has no main.go", EnvSourceDir, dir)
	}
	if _, file, _, found := runtime.Caller(0); found && filepath.IsAbs(file) {
		if dir := filepath.Join(filepath.Dir(file), "ferretdb"); ok(dir) {
			return dir, nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if cand := filepath.Join(dir, "identity", "mongostore", "mongotest", "ferretdb"); ok(cand) {
			return cand, nil
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	return "", errors.New("cannot find the ferretdb module (identity/mongostore/mongotest/ferretdb); set " + EnvSourceDir)
}
