// Package profiles finds and reads the profiles a validation runs with
// (PIDLAB_PROFILE): TOML files a module folder keeps in profiles/ (the
// built-in ones: module/procpid/profiles/reference.toml, …), or a course's
// own file. It turns one into the shared, dependency-free type the guest's
// checker takes (userspace/profile), validated before anything boots.
package profiles

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/pidlab/pidlab/userspace/profile"
)

// Dir is the folder of a module folder that holds its profiles.
const Dir = "profiles"

// Builtin names the profiles of the repository's modules
// (module/<name>/profiles/<profile>.toml), sorted.
func Builtin(repo string) []string {
	files, _ := filepath.Glob(filepath.Join(repo, "module", "*", Dir, "*.toml"))
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".toml"))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Load returns the profile nameOrPath names: a file when it has a slash or
// ends in .toml, else a built-in profile of the repository at repo. A
// built-in profile belongs to the module whose folder holds it.
func Load(repo, nameOrPath string) (*profile.Profile, error) {
	if strings.ContainsRune(nameOrPath, filepath.Separator) || strings.HasSuffix(nameOrPath, ".toml") {
		b, err := os.ReadFile(nameOrPath)
		if err != nil {
			return nil, err
		}
		return Parse(b, nameOrPath, "")
	}
	files, _ := filepath.Glob(filepath.Join(repo, "module", "*", Dir, nameOrPath+".toml"))
	if len(files) != 1 {
		return nil, fmt.Errorf("no built-in profile %q (built in: %s; or give a path to a .toml file)",
			nameOrPath, strings.Join(Builtin(repo), ", "))
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return nil, err
	}
	return Parse(b, nameOrPath, filepath.Base(filepath.Dir(filepath.Dir(files[0]))))
}

// Parse reads a profile in TOML and validates it; source names it in
// errors. module is the module folder it came from, which checks it
// unless it names another; "" for a course's own file.
func Parse(b []byte, source, module string) (*profile.Profile, error) {
	var p profile.Profile
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&p)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", source, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return nil, fmt.Errorf("profile %s: unknown key %q (see the README's profile format)", source, undecoded[0].String())
	}
	if p.Module == "" {
		p.Module = module
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("profile %s: %w", source, err)
	}
	return &p, nil
}
