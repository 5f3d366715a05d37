// Package manifest reads a module folder's pidlab.toml: what pidlab builds,
// loads and runs for the module, as data, so that a new module is a new
// folder and no change to the host's code.
package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/pidlab/pidlab/vmtest/verdict"
)

// File is a module folder's manifest's name.
const File = "pidlab.toml"

// Manifest is one module's pidlab.toml.
type Manifest struct {
	Name    string   `toml:"name"`
	About   string   `toml:"about"`
	Reload  bool     `toml:"reload"` // each suite starts on a freshly loaded module
	Try     string   `toml:"try"`    // what vm:shell suggests trying first: echo 1 > /proc/pid; cat /proc/pid
	Suites  []Suite  `toml:"suite"`
	Helpers []Helper `toml:"helper"`
	Hints   []Hint   `toml:"hint"`
}

// Suite is a Go test package that runs in the guest.
type Suite struct {
	Name    string `toml:"name"`    // what a profile's suites list calls it
	Package string `toml:"package"` // its import path relative to the repository: ./userspace/conformance
	// ByProfile runs the suite only when the run's profile names it in
	// its suites (procpid's conformance: the reference profile's, not a
	// textbook assignment's).
	ByProfile bool `toml:"by_profile"`
}

// Helper is a C program built statically for the guest.
type Helper struct {
	Source string `toml:"source"` // relative to the repository
	Env    string `toml:"env"`    // the variable that gives the tests its guest path
}

// Hint is the module's own likely cause of a kernel report, in the terms
// of someone writing it: tried before pidlab's general ones
// (vmtest/verdict), in order, the first match winning.
type Hint struct {
	Report   string `toml:"report"`   // a regular expression the kernel's report matches
	Function string `toml:"function"` // optional: in the name of the first module function the report names
	Test     string `toml:"test"`     // optional: a regular expression the name of a test running then matches
	Text     string `toml:"text"`
}

// ModuleHints are the manifest's hints as the verdict takes them; none
// for no manifest.
func (m *Manifest) ModuleHints() []verdict.ModuleHint {
	if m == nil {
		return nil
	}
	var hints []verdict.ModuleHint
	for _, h := range m.Hints {
		mh, err := h.moduleHint()
		if err != nil {
			panic(err) // Load checked it
		}
		hints = append(hints, mh)
	}
	return hints
}

func (h Hint) moduleHint() (verdict.ModuleHint, error) {
	return verdict.NewModuleHint(h.Report, h.Function, h.Test, h.Text)
}

// GuestPath is where the helper goes in the guest.
func (h Helper) GuestPath() string {
	return path.Join("/pidlab/bin", strings.TrimSuffix(path.Base(h.Source), ".c"))
}

// Load reads dir's pidlab.toml; fs.ErrNotExist when it has none.
func Load(dir string) (*Manifest, error) {
	file := filepath.Join(dir, File)
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var m Manifest
	md, err := toml.Decode(string(b), &m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return nil, fmt.Errorf("%s: unknown key %s", file, undecoded[0])
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &m, nil
}

func (m *Manifest) check() error {
	if m.Name == "" {
		return errors.New("no name")
	}
	if len(m.Suites) == 0 {
		return errors.New("no [[suite]]: a module needs a guest test package")
	}
	seen := map[string]bool{}
	for _, s := range m.Suites {
		switch {
		case s.Name == "" || s.Package == "":
			return fmt.Errorf("a [[suite]] needs a name and a package")
		case !strings.HasPrefix(s.Package, "./"):
			return fmt.Errorf("suite %s: package %q is a path in the repository, like ./userspace/conformance", s.Name, s.Package)
		case seen[s.Name]:
			return fmt.Errorf("suite %s is named twice", s.Name)
		}
		seen[s.Name] = true
	}
	for _, h := range m.Helpers {
		if h.Source == "" || h.Env == "" || !strings.HasSuffix(h.Source, ".c") {
			return fmt.Errorf("a [[helper]] needs a C source and the env variable that names it")
		}
	}
	for i, h := range m.Hints {
		if _, err := h.moduleHint(); err != nil {
			return fmt.Errorf("[[hint]] %d: %w", i+1, err)
		}
	}
	return nil
}

// SuitesFor are the suites a run whose profile names profileSuites runs,
// in the manifest's order.
func (m *Manifest) SuitesFor(profileSuites []string) []Suite {
	var out []Suite
	for _, s := range m.Suites {
		if !s.ByProfile || slices.Contains(profileSuites, s.Name) {
			out = append(out, s)
		}
	}
	return out
}

// CheckProfileSuites checks that a profile belonging to this module (its
// module is m's name) asks only for suites m runs by profile; a profile of
// another module asks m for nothing.
func (m *Manifest) CheckProfileSuites(profile, module string, asked []string) error {
	if module != m.Name {
		return nil
	}
	var have []string
	for _, s := range m.Suites {
		if s.ByProfile {
			have = append(have, s.Name)
		}
	}
	for _, name := range asked {
		if !slices.Contains(have, name) {
			return fmt.Errorf("profile %s asks for suite %q, which module %s does not run by profile (it has: %s)",
				profile, name, m.Name, strings.Join(have, ", "))
		}
	}
	return nil
}

// IsNotExist reports whether err is Load's for a folder without a manifest.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
