// Package cachedir says where pidlab keeps kernels, builds and run logs.
// It is a leaf so that every vmtest package and its tests can use it.
package cachedir

import (
	"fmt"
	"os"
	"path/filepath"
)

// Default is $XDG_CACHE_HOME/pidlab, else ~/.cache/pidlab.
func Default() (string, error) {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "pidlab"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: set XDG_CACHE_HOME (%w)", err)
	}
	return filepath.Join(home, ".cache", "pidlab"), nil
}
