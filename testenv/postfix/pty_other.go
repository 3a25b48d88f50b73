//go:build !linux

package postfix

import (
	"errors"
	"os"
)

func openPTY() (controller, terminal *os.File, err error) {
	return nil, nil, errors.New("no pseudo-terminal support on this system")
}
