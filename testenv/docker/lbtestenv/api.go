package main

// The mailstore's HTTP API: what the mailstore command serves and the
// scenario command reads.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

type submission struct {
	Time      time.Time `json:"time"`
	By        string    `json:"by"`
	Kind      string    `json:"kind"`
	MessageID string    `json:"message_id"`
	To        []string  `json:"to"`
	Subject   string    `json:"subject"`
	Err       string    `json:"err,omitempty"`
}

type delivery struct {
	Time        time.Time `json:"time"`
	Store       string    `json:"store"`
	From        string    `json:"from"`
	To          []string  `json:"to"`
	Subject     string    `json:"subject"`
	MessageID   string    `json:"message_id"`
	Loopbreaker string    `json:"x_loopbreaker,omitempty"`
	OrigRcpts   string    `json:"x_loopbreaker_original_recipients,omitempty"`
}

type runRequest struct {
	Scenario string `json:"scenario"`
	Via      string `json:"via"`
	User     string `json:"user"`
	Target   string `json:"target"`
	Cap      int    `json:"cap"`
}

// RunState is what GET /run returns.
type RunState struct {
	ID          int          `json:"id"`
	Scenario    string       `json:"scenario"`
	Via         string       `json:"via"`
	User        string       `json:"user"`
	Cap         int          `json:"cap"`
	Used        int          `json:"used"`
	Start       time.Time    `json:"start"`
	Submissions []submission `json:"submissions"`
	Deliveries  []delivery   `json:"deliveries"`
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", url, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
