package verdict

import (
	"regexp"
	"strings"
)

// Trouble is a kernel report found on the console.
type Trouble struct {
	Kind   string // "Oops", "BUG", "WARNING", …
	Report string // the report's first lines, as the kernel printed them
}

// troublePatterns are the first lines of the kernel's reports of a bug.
// Each is matched after the printk timestamp.
var troublePatterns = []struct {
	kind string
	re   *regexp.Regexp
}{
	{"kernel panic", regexp.MustCompile(`^Kernel panic - not syncing`)},
	{"Oops", regexp.MustCompile(`^Oops: |^BUG: unable to handle|^BUG: kernel NULL pointer dereference`)},
	{"general protection fault", regexp.MustCompile(`^general protection fault`)},
	{"KASAN", regexp.MustCompile(`^BUG: KASAN: `)},
	{"lockdep", regexp.MustCompile(`^WARNING: (possible .*locking|inconsistent lock state|suspicious RCU usage|bad unlock balance|lock held when returning|held lock freed)|^BUG: (held lock freed|lock held)|^\[ BUG: Invalid wait context \]`)},
	{"sleeping in atomic context", regexp.MustCompile(`^BUG: (sleeping function called from invalid context|scheduling while atomic)`)},
	{"BUG", regexp.MustCompile(`^(kernel )?BUG[: ]`)},
	{"WARNING", regexp.MustCompile(`^WARNING: `)},
	{"hung task", regexp.MustCompile(`^INFO: task .* blocked for more than`)},
	{"soft lockup", regexp.MustCompile(`^watchdog: BUG: soft lockup|^NMI watchdog: Watchdog detected hard LOCKUP`)},
	{"RCU stall", regexp.MustCompile(`^rcu: INFO: .* detected stalls`)},
	{"kmemleak", regexp.MustCompile(`^kmemleak: \d+ new suspected memory leaks|^unreferenced object 0x`)},
	{"Call Trace", regexp.MustCompile(`^Call Trace:`)},
}

var timestamp = regexp.MustCompile(`^\[\s*\d+\.\d+\]\s?`)

// reportLines is how much of a report is quoted.
const reportLines = 40

// ConsoleScanner watches console lines for kernel reports.
type ConsoleScanner struct {
	Troubles []Trouble
	current  *strings.Builder // the report being collected
	left     int
	preamble []string // lines since a "cut here" marker: a WARN's own message comes before its WARNING: line
}

// Scan takes one console line.
func (s *ConsoleScanner) Scan(line string) {
	line = strings.TrimRight(line, "\r")
	text := timestamp.ReplaceAllString(line, "")
	if kind := troubleKind(text); kind != "" {
		// What follows the start of a report (its Oops line, Call Trace,
		// the panic it causes) belongs to the report being quoted.
		if s.current == nil {
			s.Troubles = append(s.Troubles, Trouble{Kind: kind})
			s.current = &strings.Builder{}
			s.left = reportLines
			for _, p := range s.preamble {
				s.current.WriteString(p + "\n")
			}
		}
	}
	if s.current == nil {
		s.keepPreamble(line, text)
		return
	}
	s.current.WriteString(line + "\n")
	s.left--
	s.Troubles[len(s.Troubles)-1].Report = s.current.String()
	if s.left == 0 || isReportEnd(text) {
		s.current = nil
		s.preamble = nil
	}
}

// preambleLines bounds what is kept after a "cut here" marker.
const preambleLines = 3

func (s *ConsoleScanner) keepPreamble(line, text string) {
	switch {
	case strings.Contains(text, "[ cut here ]"):
		s.preamble = []string{line}
	case s.preamble != nil && len(s.preamble) < preambleLines:
		s.preamble = append(s.preamble, line)
	default:
		s.preamble = nil
	}
}

func troubleKind(text string) string {
	for _, p := range troublePatterns {
		if p.re.MatchString(text) {
			return p.kind
		}
	}
	return ""
}

func isReportEnd(text string) bool {
	return strings.HasPrefix(text, "---[ end trace") || strings.HasPrefix(text, "---[ end Kernel panic")
}

// Taint flags that loading an out-of-tree, unsigned module sets by design:
// O (TAINT_OOT_MODULE) and E (TAINT_UNSIGNED_MODULE).
const expectedTaint = 1<<12 | 1<<13

const taintLetters = "PFSRMBUDAWCIOELKXTN" // bit i is taintLetters[i], as Documentation/admin-guide/tainted-kernels.rst

// NewTaint names the taint flags in after that were not in before, other
// than the ones a module load sets on purpose.
func NewTaint(before, after uint64) string {
	added := after &^ before &^ expectedTaint
	var letters []byte
	for i := 0; i < len(taintLetters); i++ {
		if added&(1<<i) != 0 {
			letters = append(letters, taintLetters[i])
		}
	}
	return string(letters)
}
