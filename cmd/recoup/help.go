package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// cmdHelp is what a command's --help prints on stdout.
type cmdHelp struct {
	usage    string   // the synopsis, after "usage: "
	about    string   // what the command does, a paragraph or two
	env      []string // the variables it reads (envVars names)
	required []string // those of env it cannot do without, whatever their default
}

// write prints the help: synopsis, description, the flags of fs (if any) and
// the environment variables the command reads, with their defaults.
func (h cmdHelp) write(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", h.usage, strings.TrimSpace(h.about))
	if fs != nil {
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprint(w, "\nflags:\n")
			fs.SetOutput(w)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
		}
	}
	if len(h.env) > 0 {
		fmt.Fprint(w, "\nenvironment (variable, default, meaning):\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, name := range h.env {
			v, ok := lookupEnvVar(name)
			if !ok {
				panic("help: no such environment variable in envVars: " + name)
			}
			def := v.Default
			if slices.Contains(h.required, name) {
				def = "required"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, def, v.Meaning)
		}
		tw.Flush()
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// parseFlags parses a command's flags, taking -h and --help anywhere among
// them as a request for its help, which it prints on stdout. ok is false
// when the command must stop there: err is nil after the help, a usage
// error (exit status 2) after a bad flag or a stray argument.
func parseFlags(fs *flag.FlagSet, h cmdHelp, args []string, stdout, stderr io.Writer) (ok bool, err error) {
	fs.SetOutput(io.Discard) // errors are reported once, by exitCode
	fs.Usage = func() {}
	err = fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		h.write(stdout, fs)
		return false, nil
	}
	if err == nil && fs.NArg() > 0 {
		if isHelp(fs.Arg(0)) {
			h.write(stdout, fs)
			return false, nil
		}
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(stderr, "usage: %s\n(`recoup %s --help` says more)\n", h.usage, fs.Name())
		return false, &usageError{fs.Name() + ": " + err.Error()}
	}
	return true, nil
}
