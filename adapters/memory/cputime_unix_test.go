//go:build unix

package memory_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time the process has used so far. Benchmarks
// report it per operation because on a shared, loaded machine wall time
// mostly measures the wait for a CPU.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
