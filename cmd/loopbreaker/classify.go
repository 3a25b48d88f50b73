package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/loopbreaker/loopbreaker/loopdetect"
)

func runClassify(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("classify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "one JSON object per line")
	from := fs.String("from", "", "envelope sender")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rc := 0
	for _, name := range fs.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(stderr, err)
			rc = 1
			continue
		}
		m, err := loopdetect.ReadMessage(f, loopdetect.Envelope{Sender: *from}, 0)
		f.Close()
		if err != nil {
			fmt.Fprintln(stderr, name+":", err)
			rc = 1
			continue
		}
		v := loopdetect.Classify(m, loopdetect.Options{})
		if *asJSON {
			b, _ := json.Marshal(struct {
				File string `json:"file"`
				loopdetect.Verdict
			}{name, v})
			fmt.Fprintln(stdout, string(b))
		} else {
			fmt.Fprintf(stdout, "%s: %s\n", name, v.Explain())
		}
	}
	return rc
}
