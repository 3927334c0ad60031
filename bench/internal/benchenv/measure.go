package benchenv

import (
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Usage is a reading of this process's resource use; Since gives what a
// stretch of work used between two readings.
type Usage struct {
	At  time.Time
	CPU time.Duration // user plus system
}

// ReadUsage reads the clock and this process's CPU time.
func ReadUsage() Usage { return Usage{At: time.Now(), CPU: cpuTime("/proc/self/stat")} }

// Since returns the wall time and CPU time used since u, and the CPU
// time as a percentage of one core over that wall time.
func (u Usage) Since() (wall, cpu time.Duration, percent float64) {
	now := ReadUsage()
	wall, cpu = now.At.Sub(u.At), now.CPU-u.CPU
	if wall > 0 {
		percent = 100 * cpu.Seconds() / wall.Seconds()
	}
	return wall, cpu, percent
}

// ResetPeakRSS collects garbage, returns the freed memory to the kernel
// and restarts the kernel's count of this
// process's peak resident memory (Linux: writing 5 to clear_refs), so
// that the next PeakRSS is the peak of what ran in between.
func ResetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// PeakRSS is this process's peak resident memory (VmHWM) in bytes since
// the last ResetPeakRSS; 0 where the kernel does not say.
func PeakRSS() int64 { return peakRSS("/proc/self/status") }

// cpuTime reads user plus system CPU time from a /proc stat file, in
// clock ticks of 10ms (Linux's USER_HZ); 0 when it cannot.
func cpuTime(stat string) time.Duration {
	b, err := os.ReadFile(stat)
	if err != nil {
		return 0
	}
	// The command name in parentheses may hold spaces: count fields after it.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func peakRSS(status string) int64 {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// MiB formats a byte count in mebibytes.
func MiB(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// Latencies collects durations from many goroutines and reports their
// percentiles. The zero value is ready to use.
type Latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one duration.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// Percentile returns the q-th percentile (0 < q ≤ 100; 100 is the
// maximum), or 0 when nothing was recorded.
func (l *Latencies) Percentile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	slices.Sort(l.d)
	i := min(len(l.d)-1, int(float64(len(l.d))*q/100))
	return l.d[i]
}

// Len is the number of durations recorded.
func (l *Latencies) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}
