package kernel

import (
	"embed"
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

// Description is one kernel pidlab can boot, as kernels/kernels.toml
// describes it: a Debian flavour fetched as packages, or a kernel built
// from a Debian source package with a config fragment and patches.
type Description struct {
	Name     string   `toml:"name"`
	About    string   `toml:"about"`
	Debian   string   `toml:"debian"`   // a Debian 6.1 flavour: linux-image-6.1.0-N-<Debian>
	Source   string   `toml:"source"`   // a Debian source package to build from
	Base     string   `toml:"base"`     // the make target of the base configuration
	Fragment string   `toml:"fragment"` // a file of kernels/: options merged onto the base
	Patches  []string `toml:"patches"`  // files of kernels/, applied with patch -p1 in order
	Slowdown float64  `toml:"slowdown"` // times longer than a stock kernel for the same work; 0 for 1
}

// Built reports whether the kernel is built from source (else fetched).
func (d Description) Built() bool { return d.Source != "" }

// FragmentText is the text of the kernel's config fragment.
func (d Description) FragmentText() (string, error) { return descriptionFile(d.Fragment) }

// DescriptionsDir names the descriptions' folder in messages, as the
// repository has it.
const DescriptionsDir = "vmtest/kernel/kernels"

//go:embed kernels
var descriptionFiles embed.FS

// descriptionFile reads a file of kernels/.
func descriptionFile(name string) (string, error) {
	b, err := descriptionFiles.ReadFile(path.Join("kernels", name))
	if err != nil {
		return "", fmt.Errorf("%s/%s: %w", DescriptionsDir, name, err)
	}
	return string(b), nil
}

var descriptions = sync.OnceValues(func() ([]Description, error) {
	text, err := descriptionFile("kernels.toml")
	if err != nil {
		return nil, err
	}
	var file struct {
		Kernel []Description `toml:"kernel"`
	}
	if _, err := toml.Decode(text, &file); err != nil {
		return nil, fmt.Errorf("%s/kernels.toml: %w", DescriptionsDir, err)
	}
	seen := map[string]bool{}
	for _, d := range file.Kernel {
		if err := d.check(seen); err != nil {
			return nil, fmt.Errorf("%s/kernels.toml: kernel %q: %w", DescriptionsDir, d.Name, err)
		}
	}
	return file.Kernel, nil
})

func (d Description) check(seen map[string]bool) error {
	switch {
	case d.Name == "" || strings.ContainsAny(d.Name, "/, "):
		return fmt.Errorf("a name is a word, not a path or a list")
	case seen[d.Name]:
		return fmt.Errorf("named twice")
	case (d.Debian == "") == (d.Source == ""):
		return fmt.Errorf("needs one of debian (a flavour to fetch) or source (a package to build)")
	case d.Built() && (d.Base == "" || d.Fragment == ""):
		return fmt.Errorf("a kernel built from source needs a base and a fragment")
	case !d.Built() && (d.Base != "" || d.Fragment != "" || len(d.Patches) > 0):
		return fmt.Errorf("base, fragment and patches are for a kernel built from source")
	case d.Slowdown < 0:
		return fmt.Errorf("slowdown is a factor of 1 or more")
	}
	seen[d.Name] = true
	for _, f := range append([]string{d.Fragment}, d.Patches...) {
		if f == "" {
			continue
		}
		if _, err := descriptionFile(f); err != nil {
			return err
		}
	}
	return nil
}

// Descriptions are every kernel pidlab can boot, in kernels.toml's order.
func Descriptions() []Description {
	ds, err := descriptions()
	if err != nil {
		panic(err) // embedded and checked by the package's tests
	}
	return ds
}

// Describe returns the kernel named name.
func Describe(name string) (Description, bool) {
	for _, d := range Descriptions() {
		if d.Name == name {
			return d, true
		}
	}
	return Description{}, false
}

// BuiltNames lists the names of the kernels built from source, the ones
// that take patches, for messages: "debug".
func BuiltNames() string {
	var names []string
	for _, d := range Descriptions() {
		if d.Built() {
			names = append(names, d.Name)
		}
	}
	return strings.Join(names, ", ")
}

// Names lists the kernels' names, for messages: "cloud, generic, rt, debug".
func Names() string {
	var names []string
	for _, d := range Descriptions() {
		names = append(names, d.Name)
	}
	return strings.Join(names, ", ")
}
