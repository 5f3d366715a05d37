package vmtest

import (
	"bytes"
	"fmt"
	"os"
)

// A console log keeps its first consoleHead bytes and its last consoleTail
// bytes: a module printing in a loop below the flood rate would otherwise
// fill the disk (56 MB in 200 s, seen), and the boot and the end are what
// a person reads.
const (
	consoleHead = 4 << 20
	consoleTail = 1 << 20
)

// consoleLog writes the console to a file, capped: past the head it keeps
// only the tail in memory, and on Close it says what it dropped.
type consoleLog struct {
	f            *os.File
	head, limit  int // bytes written, and the head's size
	tail         [][]byte
	tailBytes    int
	tailLimit    int
	dropped      int // bytes dropped between head and tail
	droppedLines int
}

func createConsoleLog(path string) (*consoleLog, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &consoleLog{f: f, limit: consoleHead, tailLimit: consoleTail}, nil
}

// Write takes console output: whole lines, as the follower writes them.
func (l *consoleLog) Write(p []byte) (int, error) {
	if l.head+len(p) <= l.limit && l.tail == nil {
		n, err := l.f.Write(p)
		l.head += n
		return n, err
	}
	l.tail = append(l.tail, bytes.Clone(p))
	l.tailBytes += len(p)
	for l.tailBytes > l.tailLimit && len(l.tail) > 1 {
		l.dropped += len(l.tail[0])
		l.droppedLines += bytes.Count(l.tail[0], []byte("\n"))
		l.tailBytes -= len(l.tail[0])
		l.tail = l.tail[1:]
	}
	return len(p), nil
}

// Close writes the tail after a line saying what was dropped.
func (l *consoleLog) Close() error {
	if l.dropped > 0 {
		fmt.Fprintf(l.f, "[pidlab: %d lines (%d bytes) of console output dropped here: the log keeps its first %d MiB and its last %d MiB]\n",
			l.droppedLines, l.dropped, l.limit>>20, l.tailLimit>>20)
	}
	for _, p := range l.tail {
		if _, err := l.f.Write(p); err != nil {
			l.f.Close()
			return err
		}
	}
	return l.f.Close()
}
