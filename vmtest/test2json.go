package vmtest

import (
	"bufio"
	"encoding/json"
	"io"
	"os/exec"

	"github.com/pidlab/pidlab/vmtest/verdict"
)

// converter turns the guest tests' -test.v=test2json output into events
// with Go's own `go tool test2json`, as the lines arrive.
type converter struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	events chan verdict.TestEvent
}

func startConverter() (*converter, error) {
	cmd := exec.Command("go", "tool", "test2json", "-t", "-p", "guest")
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, verdict.SetupError("install Go and put it on PATH", "starting go tool test2json: %v", err)
	}
	c := &converter{cmd: cmd, in: in, events: make(chan verdict.TestEvent, 64)}
	go c.decode(out)
	return c, nil
}

func (c *converter) decode(out io.Reader) {
	defer close(c.events)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var ev verdict.TestEvent
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			c.events <- ev
		}
	}
	c.cmd.Wait()
}

func (c *converter) write(line string) {
	io.WriteString(c.in, line+"\n")
}

func (c *converter) close() {
	c.in.Close()
}
