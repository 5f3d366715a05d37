package procfs

import (
	"fmt"
	"os"
	"strings"
)

// Status is the subset of /proc/[pid]/status that pidlab compares.
type Status struct {
	Name    string    // escaped as the kernel prints it ("\n" becomes `\n`)
	State   string    // one letter; the description in parentheses is dropped
	Tgid    int       // thread group ID
	Pid     int       // thread ID
	PPid    int       // parent's thread group ID
	Uid     [4]uint32 // real, effective, saved, filesystem
	Gid     [4]uint32 // real, effective, saved, filesystem
	Threads int
}

// ReadStatus reads and parses /proc/<pid>/status.
func ReadStatus(pid int) (Status, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return Status{}, err
	}
	s, err := ParseStatus(b)
	if err != nil {
		return Status{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// statusKeys are the keys ParseStatus requires; every kernel since 4.x
// prints all of them for every task, kernel threads included.
var statusKeys = []string{"Name", "State", "Tgid", "Pid", "PPid", "Uid", "Gid", "Threads"}

// ParseStatus parses /proc/[pid]/status. Lines are "Key:\tvalue"; unknown
// keys are ignored, because each kernel release adds some.
func ParseStatus(b []byte) (Status, error) {
	values := make(map[string]string)
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return Status{}, fmt.Errorf("%w: status: line %q has no ':'", ErrMalformed, line)
		}
		if _, dup := values[key]; dup {
			return Status{}, fmt.Errorf("%w: status: key %q appears twice", ErrMalformed, key)
		}
		// One tab separates key and value; Name keeps any spaces of its own.
		values[key] = strings.TrimPrefix(value, "\t")
	}
	for _, k := range statusKeys {
		if _, ok := values[k]; !ok {
			return Status{}, fmt.Errorf("%w: status: no %q line", ErrMalformed, k)
		}
	}

	p := fieldParser{what: "status"}
	s := Status{
		Name:    values["Name"],
		State:   p.state(firstWord(values["State"]), "State"),
		Tgid:    p.int(values["Tgid"], "Tgid"),
		Pid:     p.int(values["Pid"], "Pid"),
		PPid:    p.int(values["PPid"], "PPid"),
		Threads: p.int(values["Threads"], "Threads"),
	}
	s.Uid = p.ids(values["Uid"], "Uid")
	s.Gid = p.ids(values["Gid"], "Gid")
	if p.err != nil {
		return Status{}, p.err
	}
	return s, nil
}

// ids parses the four tab-separated IDs of a Uid: or Gid: line.
func (p *fieldParser) ids(value, name string) [4]uint32 {
	var ids [4]uint32
	f := strings.Fields(value)
	if len(f) != len(ids) {
		p.fail(name, value, "four IDs")
		return ids
	}
	for i := range ids {
		ids[i] = p.uint32(f[i], name)
	}
	return ids
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i]
	}
	return s
}
