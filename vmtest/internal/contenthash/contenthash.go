// Package contenthash builds the cache keys of pidlab's build products: a
// key changes exactly when the bytes something is built from change.
package contenthash

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
)

// Key accumulates what a product is built from.
type Key struct{ h hash.Hash }

// New starts a key.
func New() *Key { return &Key{h: sha256.New()} }

// Printf adds a labelled value (a version, a name, a setting).
func (k *Key) Printf(format string, args ...any) { fmt.Fprintf(k.h, format, args...) }

// File adds a file's name, as given, and its content.
func (k *Key) File(name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(k.h, "file %s\n", name)
	_, err = io.Copy(k.h, f)
	return err
}

// String is the key: 16 hex digits.
func (k *Key) String() string { return hex.EncodeToString(k.h.Sum(nil))[:16] }
