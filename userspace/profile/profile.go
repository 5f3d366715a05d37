// Package profile describes what a /proc/pid module must print, as data: the
// /proc entry, how a PID is written to it, how a record read back is parsed,
// which fields it holds in which units, and which robustness checks apply.
//
// A course writes its own profile as a TOML file (PIDLAB_PROFILE=path); the
// built-in ones are procpid's (module/procpid/profiles). The host reads and
// validates a profile (vmtest/profiles) and hands it to the guest's checker
// (userspace/profilecheck) as JSON, so a bad profile is reported before
// anything boots. The package depends on the standard library alone: it
// is the profile's type, shared by host and guest.
package profile

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Profile is one module contract.
type Profile struct {
	Name        string   `toml:"name" json:"name"`
	Description string   `toml:"description" json:"description"`
	Entry       string   `toml:"entry" json:"entry"`   // the /proc file, e.g. /proc/pid
	Write       string   `toml:"write" json:"write"`   // how a PID is written: a format with one %d
	Checks      []string `toml:"checks" json:"checks"` // robustness checks that apply (AllChecks); empty: all but OptInChecks
	Suites      []string `toml:"suites" json:"suites"` // the module's suites it asks for (by_profile in its manifest): procpid's "conformance"
	// Module names the folder under module/ whose manifest (pidlab.toml)
	// gives the suites and helpers that check a folder without one
	// (go tool mage validate DIR). Empty: DefaultModule.
	Module string  `toml:"module" json:"module"`
	Record Record  `toml:"record" json:"record"`
	Fields []Field `toml:"field" json:"fields"`
	// Points are what a check is worth when go tool mage grade scores a
	// submission, by the check's name as the verdict table shows it
	// ("module builds", "TestEOF"); a check not named is worth 1.
	Points map[string]float64 `toml:"points" json:"points,omitempty"`
}

// Record says how the text of one read becomes named values.
type Record struct {
	// Style is "lines" (one "key<sep>value" per line) or "regex" (one
	// regular expression with a named group per field).
	Style      string   `toml:"style" json:"style"`
	Separators []string `toml:"separators" json:"separators"` // lines: between key and value; default ":" and "="
	Regex      string   `toml:"regex" json:"regex"`
}

// Field is one value of the record and the fact it must equal.
type Field struct {
	Name      string  `toml:"name" json:"name"`           // key (lines) or group name (regex)
	Fact      string  `toml:"fact" json:"fact"`           // what it is: one of Facts
	Unit      string  `toml:"unit" json:"unit"`           // how it is expressed: one of the fact's units; empty: the first
	Tolerance float64 `toml:"tolerance" json:"tolerance"` // in the field's unit
	// TolerancePercent widens Tolerance to this share of the kernel's
	// value (of utime+stime for either): /proc splits a multi-threaded process's CPU time between
	// utime and stime by its own scaling, which a sum over the threads
	// does not reproduce.
	TolerancePercent float64 `toml:"tolerance_percent" json:"tolerance_percent"`
	Hint             string  `toml:"hint" json:"hint"` // likely cause when this field is wrong
}

// Robustness checks, by the names profiles use.
const (
	CheckReadBeforeWrite = "read-before-write" // a read before any write returns, without a crash
	CheckEOF             = "eof"               // a read reaches end of file with exactly one record
	CheckSmallReads      = "small-reads"       // dd bs=4: no read returns more than asked
	CheckSecondReader    = "second-reader"     // a reader after one that stopped early gets the record
	CheckMissingPID      = "missing-pid"       // a PID with no process is refused or reported, not crashed on
	CheckBadInput        = "bad-input"         // garbage writes get an errno or are consumed, and the module lives on
	CheckBigWrite        = "big-write"         // a write past 4 MiB gets an errno (no kmalloc(count) warning or oops)

	// Opt-in: a course turns these on by naming them in checks.
	CheckEntryMode     = "entry-mode"      // no user but root may write the entry (not 0666)
	CheckBadInputErrno = "bad-input-errno" // bad input is EINVAL or ERANGE, not -1 (EPERM) or another errno
)

// AllChecks are the robustness checks a profile may choose from, in the
// order the guest runs them. Loading, unloading and a clean kernel (no
// oops, warning, leak or new taint) are judged for every profile.
var AllChecks = []string{CheckEntryMode, CheckReadBeforeWrite, CheckEOF, CheckSmallReads, CheckSecondReader,
	CheckMissingPID, CheckBadInput, CheckBadInputErrno, CheckBigWrite}

// CheckTests are the guest tests (userspace/profilecheck) that are each
// one robustness check as a whole, by the check's name: a profile that
// leaves the check out skips the test, and a grade scores it 0.
var CheckTests = map[string]string{
	CheckEntryMode:       "TestEntryMode",
	CheckReadBeforeWrite: "TestReadBeforeAnyWrite",
	CheckEOF:             "TestReadReachesEndOfFile",
	CheckSmallReads:      "TestSmallReadsAreNotOverrun",
	CheckSecondReader:    "TestSecondReaderAfterEarlyStop",
	CheckMissingPID:      "TestMissingPID",
	CheckBadInput:        "TestBadInputIsHarmless",
	CheckBigWrite:        "TestBigWrite",
}

// CheckOfTest is the robustness check the guest test named test is.
func CheckOfTest(test string) (string, bool) {
	for check, name := range CheckTests {
		if name == test {
			return check, true
		}
	}
	return "", false
}

// LeavesOut reports whether the profile leaves out the guest test named
// test: it is a robustness check the profile does not apply.
func (p *Profile) LeavesOut(test string) bool {
	check, ok := CheckOfTest(test)
	return ok && !p.Applies(check)
}

// OptInChecks apply only to a profile that names them: they judge
// choices the textbooks' own code makes (the OSC starter creates its
// entry 0666 and returns -1 for bad input), which a course may still want
// to mark down.
var OptInChecks = []string{CheckEntryMode, CheckBadInputErrno}

// DefaultModule is the module whose suites check a profile that names
// none: a profile is a contract of a /proc entry that takes a PID, and
// procpid's suites (profilecheck, conformance) are the ones that check one.
const DefaultModule = "procpid"

// Applies reports whether a robustness check is part of the profile: one
// it names, or any but the opt-in ones when it names none.
func (p *Profile) Applies(check string) bool {
	if slices.Contains(OptInChecks, check) {
		return slices.Contains(p.Checks, check)
	}
	return len(p.Checks) == 0 || slices.Contains(p.Checks, check)
}

// HasSuite reports whether the profile asks for a guest suite.
func (p *Profile) HasSuite(s string) bool { return slices.Contains(p.Suites, s) }

// WriteText is what the checker writes to select pid.
func (p *Profile) WriteText(pid int) string { return fmt.Sprintf(p.Write, pid) }

// FromJSON is how the guest receives a profile the host validated.
func FromJSON(b []byte) (*Profile, error) {
	var p Profile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return &p, p.Validate()
}

// defaults fills what a profile may leave out.
func (p *Profile) defaults() {
	if p.Module == "" {
		p.Module = DefaultModule
	}
	if p.Entry == "" {
		p.Entry = "/proc/pid"
	}
	if p.Write == "" {
		p.Write = "%d\n" // what `echo PID > /proc/pid` writes
	}
	if p.Record.Style == "" {
		p.Record.Style = "lines"
	}
	if p.Record.Style == "lines" && len(p.Record.Separators) == 0 {
		p.Record.Separators = []string{":", "="}
	}
	for i := range p.Fields {
		if p.Fields[i].Fact == "" {
			p.Fields[i].Fact = p.Fields[i].Name
		}
		if f, ok := facts[p.Fields[i].Fact]; ok && p.Fields[i].Unit == "" {
			p.Fields[i].Unit = f.units[0]
		}
	}
}

// Validate fills in what the profile leaves out and checks the rest: all
// its mistakes at once.
func (p *Profile) Validate() error {
	p.defaults()
	var errs []error
	if p.Name == "" {
		errs = append(errs, errors.New("name is missing"))
	}
	if !strings.HasPrefix(p.Entry, "/proc/") {
		errs = append(errs, fmt.Errorf("entry %q is not under /proc", p.Entry))
	}
	if n := strings.Count(p.Write, "%"); n != 1 || !strings.Contains(p.Write, "%d") {
		errs = append(errs, fmt.Errorf("write %q must hold exactly one %%d (the PID)", p.Write))
	}
	for _, c := range p.Checks {
		if !slices.Contains(AllChecks, c) {
			errs = append(errs, fmt.Errorf("unknown check %q (known: %s)", c, strings.Join(AllChecks, ", ")))
		}
	}
	if len(p.Fields) == 0 {
		errs = append(errs, errors.New("no [[field]]: a profile names at least one field"))
	}
	errs = append(errs, p.validateFields()...)
	errs = append(errs, p.Record.validate(p.Fields)...)
	for name, pts := range p.Points {
		if !(pts >= 0 && pts <= 1e6) { // NaN fails too
			errs = append(errs, fmt.Errorf("points: %q is worth %v: points are a number from 0 to 1000000", name, pts))
		}
	}
	return errors.Join(errs...)
}

func (p *Profile) validateFields() []error {
	var errs []error
	seen := map[string]bool{}
	for _, f := range p.Fields {
		if seen[f.Name] {
			errs = append(errs, fmt.Errorf("field %q is listed twice", f.Name))
		}
		seen[f.Name] = true
		fact, ok := facts[f.Fact]
		if !ok {
			errs = append(errs, fmt.Errorf("field %q: unknown fact %q (known: %s)", f.Name, f.Fact, strings.Join(FactNames(), ", ")))
			continue
		}
		if !slices.Contains(fact.units, f.Unit) {
			errs = append(errs, fmt.Errorf("field %q: fact %s has no unit %q (units: %s)", f.Name, f.Fact, f.Unit, strings.Join(fact.units, ", ")))
		}
		if f.Tolerance < 0 || f.TolerancePercent < 0 || ((f.Tolerance > 0 || f.TolerancePercent > 0) && fact.kind != numeric) {
			errs = append(errs, fmt.Errorf("field %q: a tolerance needs a numeric fact and must not be negative", f.Name))
		}
	}
	return errs
}

func (r Record) validate(fields []Field) []error {
	switch r.Style {
	case "lines":
		if r.Regex != "" {
			return []error{errors.New(`record: regex is for style "regex"`)}
		}
		var errs []error
		for _, sep := range r.Separators {
			if strings.TrimSpace(sep) == "" {
				errs = append(errs, fmt.Errorf("record: separator %q is empty or blank", sep))
				continue
			}
			for _, f := range fields {
				if strings.Contains(f.Name, sep) {
					errs = append(errs, fmt.Errorf("record: field %q holds the separator %q", f.Name, sep))
				}
			}
		}
		return errs
	case "regex":
		re, err := regexp.Compile(r.Regex)
		if err != nil {
			return []error{fmt.Errorf("record: regex: %w", err)}
		}
		var errs []error
		for _, f := range fields {
			if re.SubexpIndex(f.Name) < 0 {
				errs = append(errs, fmt.Errorf("record: regex has no group (?P<%s>…) for field %q", f.Name, f.Name))
			}
		}
		return errs
	}
	return []error{fmt.Errorf(`record: style %q is neither "lines" nor "regex"`, r.Style)}
}

// EnvGuestJSON is the guest checker's environment variable holding the
// profile, as JSON.
const EnvGuestJSON = "PIDLAB_PROFILE_JSON"

// JSON is the profile as the guest receives it.
func (p *Profile) JSON() ([]byte, error) { return json.Marshal(p) }
