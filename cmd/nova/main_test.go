package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestHelpAndVersionPrintToStdoutAndExitZero(t *testing.T) {
	cases := []struct {
		args []string
		want []string // in stdout
	}{
		{[]string{"help"}, []string{"usage: nova <command>", "serve", "NOVA_HTTP_ADDR"}},
		{[]string{"--help"}, []string{"usage: nova <command>"}},
		{[]string{"serve", "--help"}, []string{"usage: nova serve", "NOVA_JWT_SECRET_FILE"}},
		{[]string{"token", "-h"}, []string{"usage: nova token", "-user", "-ttl"}},
		{[]string{"streams", "--help"}, []string{"-busiest"}},
		{[]string{"version"}, []string{"nova "}},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != 0 {
			t.Errorf("nova %v: exit %d, stderr %q; want 0", tc.args, code, stderr.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("nova %v: stdout lacks %q:\n%s", tc.args, w, stdout.String())
			}
		}
		if strings.Count(stdout.String(), "(default 1000)") > 2 || strings.Contains(stdout.String(), "(default -)") {
			t.Errorf("nova %v: a default is shown twice or as '-':\n%s", tc.args, stdout.String())
		}
	}
}

func TestMistakesExitTwoWithAOneLineReason(t *testing.T) {
	for _, args := range [][]string{{}, {"bogus"}, {"serve", "--no-such-flag"}, {"token", "--user", "not-a-uuid"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("nova %v: exit %d, want 2", args, code)
		}
		if stderr.Len() == 0 {
			t.Errorf("nova %v: nothing on stderr", args)
		}
	}
}
