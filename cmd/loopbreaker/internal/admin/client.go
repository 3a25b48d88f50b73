package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrNotRunning says no daemon answers on the admin socket.
var ErrNotRunning = errors.New("loopbreaker is not running (no daemon answers on the admin socket)")

// Client talks to a daemon's admin socket.
type Client struct {
	// Socket is the socket that answered, or the first one tried.
	Socket string
	// Sockets are the sockets tried, in order, until one answers.
	Sockets []string
}

// NewClient returns a client for the first of the sockets at paths that
// answers.
func NewClient(paths ...string) *Client {
	return &Client{Socket: paths[0], Sockets: paths}
}

func httpClient(path string) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}
}

// unreachable says why nothing listens on a socket, or "" when the error
// is not about the socket's existence: no file, a file left by a daemon
// that stopped, no permission.
func unreachable(err error) string {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return "no such socket"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing listens on it"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return "permission denied (run as root or as a member of the daemon's group)"
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ENOTSOCK):
		return "not a socket"
	}
	return ""
}

// Do sends a request and decodes the JSON answer into out. It tries the
// sockets in order while nothing listens on them (the request was not
// sent); when none answers the error names each one and why.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	u := "http://loopbreaker" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var tried []string
	for _, sock := range c.Sockets {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(b))
		if err != nil {
			return err
		}
		resp, err := httpClient(sock).Do(req)
		if err != nil {
			if why := unreachable(err); why != "" {
				tried = append(tried, sock+": "+why)
				continue
			}
			return fmt.Errorf("admin socket %s: %w", sock, err)
		}
		c.Socket = sock
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			var e apiError
			if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != "" {
				return errors.New(e.Error)
			}
			return fmt.Errorf("admin API: %s", resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return fmt.Errorf("%w; tried %s", ErrNotRunning, strings.Join(tried, "; "))
}
