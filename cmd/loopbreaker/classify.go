package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/loopbreaker/loopbreaker/loopdetect/address"
	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
)

// classifyResult is one line of `loopbreaker classify -json`: the file,
// the classifier's verdict with its own JSON names (kind, dsn_action,
// signals, ...), the envelope sender assumed and any error.
type classifyResult struct {
	File string `json:"file"`
	classify.Verdict
	Sender *string `json:"envelope_sender,omitempty"`
	Error  string  `json:"error,omitempty"`
}

var classifyCommand = &command{
	name: "classify", args: "FILE|DIR...", minArgs: 1, maxArgs: -1,
	summary: "classify message files and print the evidence",
	doc: `Classifies each message file (a directory is read recursively) as bounce, forwarded-ndr, auto-reply or ordinary, and says why. Without -from, the envelope sender is taken from the Return-Path field, else from an mbox From_ line; -from '' or -from '<>' is the null sender.

The exit status is 1 when a file could not be read; the others are still printed.`,
	setup: classifySetup,
}

// runClassify runs loopbreaker classify with args; it returns the exit
// status: 0 when every file was classified, 1 when a file could not be
// read (the others are still printed), 2 on a usage error.
func runClassify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return classifyCommand.run(ctx, args, stdout, stderr)
}

func classifySetup(fset *flag.FlagSet) runFunc {
	asJSON := fset.Bool("json", false, "print one JSON object per line")
	var from *string
	fset.Func("from", "envelope `SENDER` (MAIL FROM) to assume; '' or '<>' for the null sender", func(s string) error {
		s = address.Path(s)
		from = &s
		return nil
	})
	bodyLimit := fset.Int("body-limit", classify.DefaultBodyLimit, "body `BYTES` to inspect")
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		if *bodyLimit <= 0 {
			return usageError("-body-limit must be positive")
		}
		return exitStatus(classifyFiles(ctx, args, *asJSON, from, *bodyLimit, stdout, stderr))
	}
}

func classifyFiles(ctx context.Context, args []string, asJSON bool, from *string, bodyLimit int, stdout, stderr io.Writer) int {
	opts := classify.Options{BodyLimit: bodyLimit}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	code := 0
	emit := func(res classifyResult) {
		if asJSON {
			if res.Signals == nil {
				res.Signals = []classify.Signal{}
			}
			if err := enc.Encode(res); err != nil {
				code = 1
			}
			return
		}
		if res.Error != "" {
			fmt.Fprintf(stdout, "%s: error: %s\n", res.File, res.Error)
			return
		}
		kind := string(res.Kind)
		if res.DSNAction != "" {
			kind += " " + res.DSNAction
		}
		fmt.Fprintf(stdout, "%s: %s — %s\n", res.File, kind, res.Verdict.Explain())
	}
	for _, arg := range args {
		files, err := collectFiles(arg)
		if err != nil {
			fmt.Fprintf(stderr, "loopbreaker classify: %v\n", err)
			emit(classifyResult{File: arg, Error: err.Error()})
			code = 1
			continue
		}
		for _, file := range files {
			if err := ctx.Err(); err != nil {
				fmt.Fprintf(stderr, "loopbreaker classify: %v\n", err)
				return 1
			}
			res, err := classifyFile(file, from, opts)
			if err != nil {
				fmt.Fprintf(stderr, "loopbreaker classify: %v\n", err)
				code = 1
			}
			emit(res)
		}
	}
	return code
}

// collectFiles expands a directory into its regular files, sorted; a file
// is returned as it is.
func collectFiles(arg string) ([]string, error) {
	st, err := os.Stat(arg)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{arg}, nil
	}
	var files []string
	err = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

func classifyFile(file string, from *string, opts classify.Options) (classifyResult, error) {
	res := classifyResult{File: file}
	f, err := os.Open(file)
	if err != nil {
		res.Error = err.Error()
		return res, err
	}
	defer f.Close()
	msg, err := classify.ReadStoredMessage(f, opts.BodyLimit)
	if err != nil {
		res.Error = err.Error()
		return res, fmt.Errorf("%s: %w", file, err)
	}
	if from != nil {
		msg.Envelope.Sender = *from
		msg.Envelope.SenderUnknown = false
	}
	if !msg.Envelope.SenderUnknown {
		s := msg.Envelope.Sender
		res.Sender = &s
	}
	res.Verdict = classify.Classify(msg, opts)
	return res, nil
}
