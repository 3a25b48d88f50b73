package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	testNDR = "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.example (Mail Delivery System)\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\n\r\nThis is the mail system at host mx.example.\r\n"
	testFwd = "From: Alice <alice@corp.example>\r\nSubject: FW: Undeliverable: offer\r\n\r\nsee below\r\n"
	testOOF = "From MAILER-DAEMON  Mon Sep 20 19:29:27 2021\nFrom: Gina <gina@corp.example>\n" +
		"Subject: Automatic reply: offer\nAuto-Submitted: auto-replied\n\nI am away.\n"
	testHam   = "Return-Path: <bob@example.org>\r\nFrom: Bob <bob@example.org>\r\nSubject: lunch\r\n\r\nLunch?\r\n"
	testDelay = "From: MAILER-DAEMON@mx.example\r\nSubject: Delayed Mail (still being retried)\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; x@y.example\r\nAction: delayed\r\nStatus: 4.4.1\r\n--b--\r\n"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runClassifyTest(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runClassify(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestClassifyJSON(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a-ndr.eml": testNDR, "b-fwd.eml": testFwd, "c-oof.mbox": testOOF, "d-ham.eml": testHam, "sub/e-delay.eml": testDelay,
	})
	code, out, errOut := runClassifyTest(t, "-json", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []struct {
		file, kind, action, signal string
		sender                     *string
	}{
		{"a-ndr.eml", "bounce", "failed", "null-sender", ptr("")},
		{"b-fwd.eml", "forwarded-ndr", "failed", "subject-forwarded-ndr", nil},
		{"c-oof.mbox", "auto-reply", "", "auto-submitted", ptr("")},
		{"d-ham.eml", "ordinary", "", "", ptr("bob@example.org")},
		{filepath.Join("sub", "e-delay.eml"), "bounce", "delayed", "delivery-status-part", nil},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, lines[i])
		}
		if got["file"] != filepath.Join(dir, w.file) || got["kind"] != w.kind {
			t.Errorf("line %d: %v", i, got)
		}
		if a, _ := got["dsn_action"].(string); a != w.action {
			t.Errorf("%s: dsn_action %q, want %q", w.file, a, w.action)
		}
		sigs, ok := got["signals"].([]any)
		if !ok {
			t.Fatalf("%s: signals missing or not a list: %v", w.file, got)
		}
		found := w.signal == ""
		for _, s := range sigs {
			if m, _ := s.(map[string]any); m["name"] == w.signal {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: signal %s missing: %v", w.file, w.signal, sigs)
		}
		s, has := got["envelope_sender"].(string)
		if (w.sender == nil) == has || w.sender != nil && s != *w.sender {
			t.Errorf("%s: envelope sender %v, want %v", w.file, got["envelope_sender"], w.sender)
		}
	}
}

func ptr(s string) *string { return &s }

func TestClassifyFromFlag(t *testing.T) {
	dir := writeFiles(t, map[string]string{"m.eml": "From: x@y.example\r\nSubject: hello\r\n\r\nhi\r\n"})
	file := filepath.Join(dir, "m.eml")
	for _, tt := range []struct {
		from string
		want bool
	}{{"<>", true}, {"", true}, {"x@y.example", false}} {
		code, out, _ := runClassifyTest(t, "-json", "-from", tt.from, file)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		if got := strings.Contains(out, `"null-sender"`); got != tt.want {
			t.Errorf("-from %q: null-sender %v, want %v: %s", tt.from, got, tt.want, out)
		}
	}
	// Without -from and without Return-Path, the sender is unknown, not null.
	_, out, _ := runClassifyTest(t, "-json", file)
	if strings.Contains(out, "null-sender") || strings.Contains(out, "envelope_sender") {
		t.Errorf("unknown sender taken as known: %s", out)
	}
}

func TestClassifyText(t *testing.T) {
	dir := writeFiles(t, map[string]string{"ndr.eml": testNDR, "delay.eml": testDelay})
	code, out, _ := runClassifyTest(t, filepath.Join(dir, "ndr.eml"), filepath.Join(dir, "delay.eml"))
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 ||
		!strings.HasPrefix(lines[0], filepath.Join(dir, "ndr.eml")+": bounce failed — bounce: null-sender=<>") ||
		!strings.HasPrefix(lines[1], filepath.Join(dir, "delay.eml")+": bounce delayed — bounce: ") {
		t.Errorf("output:\n%s", out)
	}
}

func TestClassifyExitCodes(t *testing.T) {
	dir := writeFiles(t, map[string]string{"ok.eml": testHam})
	tests := []struct {
		name  string
		args  []string
		code  int
		lines int
	}{
		{"no files", nil, 2, 0},
		{"bad flag", []string{"-nope", filepath.Join(dir, "ok.eml")}, 2, 0},
		{"bad body limit", []string{"-body-limit", "0", filepath.Join(dir, "ok.eml")}, 2, 0},
		{"help", []string{"-h"}, 0, -1},
		{"missing file still prints the others", []string{"-json", filepath.Join(dir, "missing.eml"), filepath.Join(dir, "ok.eml")}, 1, 2},
		{"all fine", []string{filepath.Join(dir, "ok.eml")}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, _ := runClassifyTest(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			n := 0
			if s := strings.TrimSpace(out); s != "" {
				n = len(strings.Split(s, "\n"))
			}
			if tt.lines >= 0 && n != tt.lines {
				t.Errorf("%d lines, want %d:\n%s", n, tt.lines, out)
			}
		})
	}
}

func TestClassifyCanceled(t *testing.T) {
	dir := writeFiles(t, map[string]string{"ok.eml": testHam})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	if code := runClassify(ctx, []string{dir}, &out, &errOut); code != 1 || out.Len() != 0 {
		t.Errorf("exit %d, output %q", code, out.String())
	}
}
