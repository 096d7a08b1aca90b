package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/matryer/is"
)

func TestReadVersion(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Path: "github.com/recoupdev/recoup", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef"},
			{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
		}}
	t.Run("stamped", func(t *testing.T) {
		is := is.New(t)
		v := readVersion("v1.2.3", "fedcba", "2026-12-05T08:00:00Z", vcs, true)
		is.Equal(v.Version, "v1.2.3")
		is.Equal(v.Commit, "fedcba")             // the stamp wins over the recorded revision
		is.Equal(v.Date, "2026-12-05T08:00:00Z") // and its build date over the commit time
		is.True(!v.Modified && !v.DateIsVCS)
	})
	t.Run("not stamped, in a checkout", func(t *testing.T) {
		is := is.New(t)
		v := readVersion("", "", "", vcs, true)
		is.Equal(v.Version, "(devel)")
		is.Equal(v.Commit, "0123456789abcdef")   // vcs.revision
		is.Equal(v.Date, "2026-12-01T10:00:00Z") // vcs.time
		is.True(v.Modified && v.DateIsVCS)       // vcs.modified
		var out bytes.Buffer
		v.print(&out)
		is.Equal(out.String(), "recoup (devel)\ncommit: 0123456789abcdef (with uncommitted changes)\ncommitted: 2026-12-01T10:00:00Z\ngo: go1.27.3 "+goPlatform()+"\n")
	})
	t.Run("go install of a release", func(t *testing.T) {
		is := is.New(t)
		info := &debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "v0.2.0"}}
		v := readVersion("", "", "", info, true)
		is.Equal(v.Version, "v0.2.0") // the module version
		is.Equal(v.Commit, "")
	})
	t.Run("nothing known", func(t *testing.T) {
		is := is.New(t)
		is.Equal(readVersion("", "", "", nil, false).Version, "(devel)")
	})
}

// buildRecoup builds the command into a temporary directory with extra go
// build flags. Like TestMain's build it uses -race, so that only the link
// is new: the packages come from the same build cache.
func buildRecoup(t *testing.T, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "recoup")
	args := append(append([]string{"build", "-race"}, flags...), "-o", bin, ".")
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

func versionOf(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("recoup version: %v\n%s", err, out)
	}
	return string(out)
}

// TestVersionStamp: a binary built as `make build` builds it prints the
// stamped version, commit and build date.
func TestVersionStamp(t *testing.T) {
	t.Parallel()
	bin := buildRecoup(t, "-ldflags", "-X main.version=v9.8.7-test -X main.commit=c0ffee1234 -X main.date=2026-12-05T09:10:11Z")
	got := versionOf(t, bin)
	for _, want := range []string{"recoup v9.8.7-test\n", "commit: c0ffee1234\n", "built: 2026-12-05T09:10:11Z\n", "go: go1."} {
		if !strings.Contains(got, want) {
			t.Errorf("recoup version printed\n%s\nwant a line %q", got, want)
		}
	}
}

// TestVersionFromVCS: a binary built without the stamp in a git checkout
// (plain go build, as TestMain builds it) prints the commit the go command
// recorded.
func TestVersionFromVCS(t *testing.T) {
	t.Parallel()
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI runs in a git clone, yet git rev-parse HEAD failed: %v", err)
		}
		t.Skipf("not a git checkout (git rev-parse HEAD: %v): nothing for the go command to record", err)
	}
	// TestMain built binary without a stamp, with -buildvcs=true.
	got := versionOf(t, binary)
	if !strings.HasPrefix(got, "recoup ") || !strings.Contains(got, "commit: "+strings.TrimSpace(string(head))) ||
		!strings.Contains(got, "committed: ") {
		t.Errorf("recoup version printed\n%s\nwant the commit %s and its time", got, head)
	}
}

func goPlatform() string { return runtime.GOOS + "/" + runtime.GOARCH }
