package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/matryer/is"
)

// helpCases is every command and subcommand, with the usage line its help
// starts with and the variables it must list.
var helpCases = []struct {
	args  []string
	usage string
	env   []string
}{
	{[]string{"serve"}, "usage: recoup serve", serveEnv},
	{[]string{"worker"}, "usage: recoup worker", workerEnv},
	{[]string{"migrate"}, "usage: recoup migrate up|down|status", databaseEnv},
	{[]string{"migrate", "up"}, "usage: recoup migrate up", databaseEnv},
	{[]string{"migrate", "down"}, "usage: recoup migrate down", databaseEnv},
	{[]string{"migrate", "status"}, "usage: recoup migrate status", databaseEnv},
	{[]string{"merchant"}, "usage: recoup merchant", databaseEnv},
	{[]string{"merchant", "create"}, "usage: recoup merchant create", databaseEnv},
	{[]string{"dev"}, "usage: recoup dev send-event", devEnv},
	{[]string{"dev", "send-event"}, "usage: recoup dev send-event", devEnv},
	{[]string{"version"}, "usage: recoup version", nil},
}

// TestEveryCommandAnswersHelp: --help and -h print the command's help on
// stdout, listing each variable it reads with its default, and return nil
// (exit status 0) without reading the environment or doing anything.
func TestEveryCommandAnswersHelp(t *testing.T) {
	for _, tc := range helpCases {
		for _, flag := range []string{"--help", "-h"} {
			name := strings.Join(append(append([]string{}, tc.args...), flag), " ")
			t.Run(name, func(t *testing.T) {
				is := is.New(t)
				var stdout, stderr bytes.Buffer
				args := append(append([]string{"recoup"}, tc.args...), flag)
				err := run(context.Background(), args, env(), &stdout, &stderr)
				is.NoErr(err)                                                                                                  // help is not an error: exit status 0
				is.Equal(stderr.String(), "")                                                                                  // nothing on stderr
				is.True(strings.HasPrefix(stdout.String(), tc.usage+"\n") || strings.HasPrefix(stdout.String(), tc.usage+" ")) // the usage comes first
				for _, name := range tc.env {
					v, ok := lookupEnvVar(name)
					is.True(ok) // every variable a command reads is in the table
					line := envLine(stdout.String(), name)
					is.True(line != "")                                                              // the variable is listed
					is.True(strings.Contains(line, v.Default) || strings.Contains(line, "required")) // with its default
				}
			})
		}
	}
}

// envLine is the line of a help text's environment list that lists the
// variable name.
func envLine(help, name string) string {
	_, list, _ := strings.Cut(help, "\nenvironment (variable, default, meaning):\n")
	for _, l := range strings.Split(list, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == name {
			return l
		}
	}
	return ""
}

func TestHelpAnywhereAmongTheFlags(t *testing.T) {
	is := is.New(t)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"recoup", "merchant", "create", "--name", "Acme", "--help"}, env(), &stdout, &stderr)
	is.NoErr(err)
	is.True(strings.HasPrefix(stdout.String(), "usage: recoup merchant create"))
}

func TestHelpCommand(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		is := is.New(t)
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"recoup"}, args...), env(), &stdout, &stderr)
		is.NoErr(err)
		is.True(strings.HasPrefix(stdout.String(), "usage: recoup <command>"))
	}
	is := is.New(t)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"recoup", "help", "migrate", "down"}, env(), &stdout, &stderr)
	is.NoErr(err)
	is.True(strings.HasPrefix(stdout.String(), "usage: recoup migrate down")) // help <command> is <command> --help
}

// A bad flag, a stray argument or a missing subcommand is a usage error:
// exit status 2, the usage on stderr, nothing on stdout.
func TestUsageErrorsExitTwo(t *testing.T) {
	cases := [][]string{
		{"serve", "--bogus"},
		{"serve", "stray"},
		{"worker", "--bogus"},
		{"migrate"},
		{"migrate", "sideways"},
		{"migrate", "down", "--bogus"},
		{"merchant"},
		{"merchant", "delete"},
		{"merchant", "create"},
		{"dev"},
		{"dev", "send-event", "--bogus"},
		{"version", "--bogus"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			is := is.New(t)
			var stdout, stderr, out bytes.Buffer
			err := run(context.Background(), append([]string{"recoup"}, args...), env(), &stdout, &stderr)
			is.Equal(exitCode(err, &out), 2)                            // a usage error
			is.True(strings.Contains(stderr.String(), "usage: recoup")) // the usage is shown
			is.Equal(stdout.String(), "")
			is.True(!strings.Contains(out.String(), "recoup: recoup")) // one "recoup:" before the message
		})
	}
}

// TestHelpProcessExitsZero runs the binary: every --help exits 0 with the
// help on stdout (the flag package's own handling exited 2 with
// "flag: help requested").
func TestHelpProcessExitsZero(t *testing.T) {
	t.Parallel()
	for _, tc := range helpCases {
		args := append(append([]string{}, tc.args...), "--help")
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(binary, args...)
			cmd.Env = []string{"PATH=/usr/bin:/bin"} // no configuration at all
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("recoup %s: %v; want exit status 0\n%s", strings.Join(args, " "), err, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), tc.usage) || stderr.Len() != 0 {
				t.Errorf("recoup %s printed\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stdout.String(), stderr.String())
			}
		})
	}
}
