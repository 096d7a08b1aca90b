//go:build unix

// Package cputime reads the CPU time the process has used, for benchmarks:
// on a shared, loaded machine wall time also measures the wait for a CPU,
// which the process's own CPU time leaves out.
package cputime

import (
	"syscall"
	"time"
)

// Process is the CPU time (user and system) the process has used so far.
func Process() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
