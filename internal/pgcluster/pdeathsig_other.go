//go:build !linux

package pgcluster

import "syscall"

// setParentDeathSignal does nothing where the kernel has no parent-death
// signal; Stop is then the only way the server ends.
func setParentDeathSignal(*syscall.SysProcAttr, syscall.Signal) {}
