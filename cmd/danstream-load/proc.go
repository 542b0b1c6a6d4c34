package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat. It is 100
// on every Linux ABI Go supports; reading sysconf would need cgo.
const clockTicks = 100

// procSample is one reading of a process's CPU time and resident memory.
type procSample struct {
	at     time.Time
	cpu    time.Duration // utime + stime since the process started
	rssKiB int64
}

// readProc reads /proc/PID/stat and /proc/PID/status.
func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("server process: %w", err)
	}
	// The command name (field 2) may hold spaces and parentheses: fields after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: no ')' in %q", pid, stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: %d fields after the name, want >= 13", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("/proc/%d/stat: utime %q stime %q not numbers", pid, f[11], f[12])
	}
	s.cpu = time.Duration(ut+st) * time.Second / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("server process: %w", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb := strings.Fields(rest)
			if len(kb) > 0 {
				s.rssKiB, _ = strconv.ParseInt(kb[0], 10, 64)
			}
		}
	}
	return s, nil
}

// usage is CPU (in cores) and memory of a process over an interval.
type usage struct {
	Cores     float64 `json:"cores"`   // CPU seconds per wall second
	RSSMiB    float64 `json:"rss_mib"` // mean resident set over the samples
	RSSMaxMiB float64 `json:"rss_max_mib"`
	Seconds   float64 `json:"seconds"`
	// The stream's output over the same interval (from /api/streams), so CPU
	// can be put per frame: on a machine without spare cores the process gets
	// what is left, and SR slows down instead of CPU going up.
	FPS           float64 `json:"fps"`
	CPUMsPerFrame float64 `json:"cpu_ms_per_frame"`
	EncKBPerFrame float64 `json:"enc_kb_per_frame"`
}

// meter samples a process every period until stopped, so that RSS is an
// average over the phase rather than one reading.
type meter struct {
	pid  int
	stop chan struct{}
	done chan usage
}

func startMeter(pid int, period time.Duration) (*meter, error) {
	first, err := readProc(pid)
	if err != nil {
		return nil, err
	}
	m := &meter{pid: pid, stop: make(chan struct{}), done: make(chan usage, 1)}
	go func() {
		tk := time.NewTicker(period)
		defer tk.Stop()
		last := first
		var sum, mx float64
		n := 0
		add := func(s procSample) {
			mib := float64(s.rssKiB) / 1024
			sum += mib
			mx = max(mx, mib)
			n++
		}
		add(first)
		for {
			select {
			case <-tk.C:
				if s, err := readProc(pid); err == nil {
					last = s
					add(s)
				}
				continue
			case <-m.stop:
			}
			break
		}
		if s, err := readProc(pid); err == nil {
			last = s
			add(s)
		}
		u := usage{RSSMiB: sum / float64(n), RSSMaxMiB: mx, Seconds: last.at.Sub(first.at).Seconds()}
		if u.Seconds > 0 {
			u.Cores = (last.cpu - first.cpu).Seconds() / u.Seconds
		}
		m.done <- u
	}()
	return m, nil
}

func (m *meter) Stop() usage {
	close(m.stop)
	return <-m.done
}

// udpErrors are the kernel's UDP buffer-overflow counters (/proc/net/snmp),
// which tell loss on a loaded loopback from loss in the programs.
type udpErrors struct{ rcvbuf, sndbuf int64 }

func readUDPErrors() (udpErrors, error) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return udpErrors{}, err
	}
	var head []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		var u udpErrors
		for i := 1; i < len(f) && i < len(head); i++ {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			switch head[i] {
			case "RcvbufErrors":
				u.rcvbuf = n
			case "SndbufErrors":
				u.sndbuf = n
			}
		}
		return u, nil
	}
	return udpErrors{}, fmt.Errorf("/proc/net/snmp: no Udp lines")
}
