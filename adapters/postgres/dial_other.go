//go:build !linux

package postgres

import "syscall"

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist: keep-alive still drops an
// idle connection whose path died.
func setUserTimeout(string, string, syscall.RawConn) error { return nil }
