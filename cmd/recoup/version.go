package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// The version stamp, set at build time by `make build` (and the Dockerfile):
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.commit=<sha> -X main.date=<UTC time>"
//
// Left empty, `recoup version` falls back to what the go command recorded
// in the binary: the module version (go install …@version) and the VCS
// revision, commit time and modified flag (a build in a git checkout).
var (
	version = ""
	commit  = ""
	date    = ""
)

// buildVersion is what `recoup version` prints.
type buildVersion struct {
	Version   string // v1.2.3, a git describe, a pseudo-version, or (devel)
	Commit    string // the full revision, or ""
	Modified  bool   // built from a tree with uncommitted changes
	Date      string // RFC 3339, or ""
	DateIsVCS bool   // Date is the commit's time, not the build's
	Go        string // the toolchain, e.g. go1.27.3
}

// readVersion combines the ldflags stamp with the build info; a stamped
// value wins over the recorded one.
func readVersion(stampVersion, stampCommit, stampDate string, info *debug.BuildInfo, ok bool) buildVersion {
	v := buildVersion{Version: stampVersion, Commit: stampCommit, Date: stampDate, Go: runtime.Version()}
	if ok && info != nil {
		if info.GoVersion != "" {
			v.Go = info.GoVersion
		}
		if v.Version == "" {
			v.Version = info.Main.Version
		}
		var revision, vcsTime string
		var modified bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				vcsTime = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if v.Commit == "" && revision != "" {
			v.Commit, v.Modified = revision, modified
			if v.Date == "" && vcsTime != "" {
				v.Date, v.DateIsVCS = vcsTime, true
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

func (v buildVersion) print(w io.Writer) {
	fmt.Fprintf(w, "recoup %s\n", v.Version)
	if v.Commit != "" {
		modified := ""
		if v.Modified {
			modified = " (with uncommitted changes)"
		}
		fmt.Fprintf(w, "commit: %s%s\n", v.Commit, modified)
	}
	if v.Date != "" {
		label := "built"
		if v.DateIsVCS {
			label = "committed"
		}
		fmt.Fprintf(w, "%s: %s\n", label, v.Date)
	}
	fmt.Fprintf(w, "go: %s %s/%s\n", v.Go, runtime.GOOS, runtime.GOARCH)
}

func runVersion(stdout io.Writer) error {
	info, ok := debug.ReadBuildInfo()
	readVersion(version, commit, date, info, ok).print(stdout)
	return nil
}

var versionHelp = cmdHelp{
	usage: "recoup version",
	about: `
Prints the version, the commit and the build date stamped by make build (or
the Dockerfile); a binary built without the stamp (go install, go build)
shows what the go command recorded instead: the module version, and in a git
checkout the commit, its time and whether the tree had uncommitted changes.`,
}

func runVersionCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if ok, err := parseFlags(fs, versionHelp, args, stdout, stderr); !ok {
		return err
	}
	return runVersion(stdout)
}
