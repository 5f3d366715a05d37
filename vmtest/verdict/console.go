package verdict

import (
	"regexp"
	"strings"

	"github.com/pidlab/pidlab/userspace/guestapi"
)

// Trouble is a kernel report found on the console.
type Trouble struct {
	Kind   string // "Oops", "BUG", "WARNING", …
	Report string // the report's first lines, as the kernel printed them
	// Test is the test the guest had marked on the console when the report
	// began (guestapi.TestMark): the one it belongs to; "" for none.
	Test string
}

// Headline names the report in a verdict: "kernel Oops", "kernel panic".
func (t Trouble) Headline() string {
	if strings.HasPrefix(t.Kind, "kernel ") {
		return t.Kind
	}
	return "kernel " + t.Kind
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
	{"RCU stall", regexp.MustCompile(`^rcu: INFO: .*(detected stalls|self-detected stall)`)},
	{"kmemleak", regexp.MustCompile(`^kmemleak: \d+ new suspected memory leaks|^unreferenced object 0x`)},
	{"Call Trace", regexp.MustCompile(`^Call Trace:`)},
}

var timestamp = regexp.MustCompile(`^\[\s*\d+\.\d+\]\s?`)

// reportLines is how much of a report is quoted; a lockup's, which the
// run stops at, up to the end of its call trace (its registers, the
// trace, the user's registers take about 40 lines).
const (
	reportLines       = 40
	lockupReportLines = 60
)

// lockupKinds are the reports of a kernel that no longer makes progress:
// the run cannot end by itself, so the host stops it at the report.
var lockupKinds = map[string]bool{"soft lockup": true, "hung task": true, "RCU stall": true}

// IsLockup reports whether a kind of report is a lockup's.
func IsLockup(kind string) bool { return lockupKinds[kind] }

// ConsoleScanner watches console lines for kernel reports.
type ConsoleScanner struct {
	Troubles []Trouble
	marked   string           // the test last marked on the console, "" for none
	current  *strings.Builder // the report being collected
	left     int
	preamble []string // lines since a "cut here" marker: a WARN's own message comes before its WARNING: line
	lockup   int      // 1 + the index in Troubles of the first lockup report, 0 for none
	complete bool     // the first lockup report has been collected
}

// Lockup is the first lockup report (soft lockup, hung task, RCU stall),
// nil if there is none, and whether it is complete: its call trace ended
// or it is as long as a report is quoted.
func (s *ConsoleScanner) Lockup() (*Trouble, bool) {
	if s.lockup == 0 {
		return nil, false
	}
	return &s.Troubles[s.lockup-1], s.complete
}

// Scan takes one console line.
func (s *ConsoleScanner) Scan(line string) {
	line = strings.TrimRight(line, "\r")
	text := timestamp.ReplaceAllString(line, "")
	if m := guestapi.TestMark.FindStringSubmatch(text); m != nil {
		s.marked = m[1]
		if s.marked == guestapi.NoTest {
			s.marked = ""
		}
	}
	if kind := troubleKind(text); kind != "" {
		// What follows the start of a report (its Oops line, Call Trace,
		// the panic it causes) belongs to the report being quoted.
		if s.current == nil {
			s.Troubles = append(s.Troubles, Trouble{Kind: kind, Test: s.marked})
			if IsLockup(kind) && s.lockup == 0 {
				s.lockup = len(s.Troubles)
			}
			s.current = &strings.Builder{}
			s.left = reportLines
			if s.lockup == len(s.Troubles) {
				s.left = lockupReportLines
			}
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
	lockup := s.lockup == len(s.Troubles)
	if s.left == 0 || isReportEnd(text) || lockup && isTraceEnd(text) {
		s.current = nil
		s.preamble = nil
		s.complete = s.complete || lockup
	}
}

// isTraceEnd matches the end of a call trace. A lockup report ends there
// (no "end trace" line follows it); an Oops goes on after it.
func isTraceEnd(text string) bool { return strings.TrimSpace(text) == "</TASK>" }

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

// keyFrames is how many frames of a call trace KeyLines quotes.
const keyFrames = 4

// KeyLines are the lines of a report a person reads first, without their
// timestamps: a WARN's own message (printed before its WARNING: line), the
// headline (kernel BUG at file:line!, BUG: …, WARNING: … at file:line, a
// lockup), the RIP line (where the CPU was) and the call trace's first
// frames on one line, innermost first, without the stale "? " ones.
func (t Trouble) KeyLines() []string {
	var keep, frames []string
	headline, rip, inTrace, traced := false, false, false, false
	for _, line := range strings.Split(strings.TrimRight(t.Report, "\n"), "\n") {
		text := strings.TrimSpace(timestamp.ReplaceAllString(line, ""))
		switch {
		case text == "" || strings.Contains(text, "[ cut here ]"):
		case !headline:
			keep = append(keep, text) // the message before a WARNING:, or the headline itself
			headline = troubleKind(text) != ""
		case strings.HasPrefix(text, "RIP: ") && !rip && !inTrace && !strings.HasPrefix(text, "RIP: 0033:"): // 0033: user code, saying nothing of the bug
			keep = append(keep, text)
			rip = true
		case strings.HasPrefix(text, "Call Trace:") && !traced:
			inTrace, traced = true, true
		case inTrace && (text == "</TASK>" || strings.HasPrefix(text, "RIP: ") || len(frames) == keyFrames):
			inTrace = false
		case inTrace && !strings.HasPrefix(text, "<") && !strings.HasPrefix(text, "? "):
			frames = append(frames, text)
		}
	}
	if len(frames) > 0 {
		keep = append(keep, "Call Trace: "+strings.Join(frames, ", "))
	}
	return keep
}
