package profiles

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/userspace/profile"
)

const repo = "../.."

func TestBuiltinProfilesLoad(t *testing.T) {
	assert.Equal(t, []string{"osc10e", "reference"}, Builtin(repo))
	for _, name := range Builtin(repo) {
		p, err := Load(repo, name)
		require.NoError(t, err, name)
		assert.Equal(t, name, p.Name)
		assert.Equal(t, "procpid", p.Module, "a built-in profile belongs to the module folder that holds it")
		assert.Equal(t, "/proc/pid", p.Entry)
		assert.Equal(t, "42\n", p.WriteText(42), "what echo 42 > /proc/pid writes")
		for _, c := range profile.AllChecks {
			optIn := slices.Contains(profile.OptInChecks, c)
			assert.Equal(t, name == "reference" || !optIn, p.Applies(c), "%s: robustness check %s (opt-in: %v)", name, c, optIn)
		}
	}
	_, err := Load(repo, "osc9e")
	assert.ErrorContains(t, err, "built in: osc10e, reference")
}

// TestPointsAreRead: a course's points, check names with spaces quoted as
// TOML keys, reach the profile the grade scores with.
func TestPointsAreRead(t *testing.T) {
	p, err := Parse([]byte("name = \"x\"\n[points]\n\"module builds\" = 0\nTestEOF = 2.5\n[[field]]\nname = \"pid\"\n"), "course.toml", "")
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"module builds": 0, "TestEOF": 2.5}, p.Points)
}

func TestACoursesFileIsCheckedByProcpid(t *testing.T) {
	file := filepath.Join(t.TempDir(), "course.toml")
	require.NoError(t, os.WriteFile(file, []byte("name = \"course\"\n[[field]]\nname = \"pid\"\n"), 0o644))
	p, err := Load(repo, file)
	require.NoError(t, err)
	assert.Equal(t, "course", p.Name)
	assert.Equal(t, profile.DefaultModule, p.Module, "a profile file that names no module")
	_, err = Load(repo, filepath.Join(t.TempDir(), "missing.toml"))
	assert.Error(t, err)
}

func TestBadProfilesAreExplained(t *testing.T) {
	cases := map[string]string{
		`name = "x"`: "no [[field]]",
		"name = \"x\"\nwrite = \"%s\"\n[[field]]\nname = \"pid\"":                                    "exactly one %d",
		"name = \"x\"\nchecks = [\"eof\", \"fast\"]\n[[field]]\nname = \"pid\"":                      `unknown check "fast"`,
		"name = \"x\"\n[[field]]\nname = \"pid\"\nunit = \"ms\"":                                     `fact pid has no unit "ms"`,
		"name = \"x\"\n[[field]]\nname = \"age\"":                                                    `unknown fact "age"`,
		"name = \"x\"\n[record]\nstyle = \"regex\"\nregex = 'pid=(\\d+)'\n[[field]]\nname = \"pid\"": "no group (?P<pid>…)",
		"name = \"x\"\n[record]\nstyle = \"json\"\n[[field]]\nname = \"pid\"":                        "neither",
		"name = \"x\"\ncolour = \"red\"\n[[field]]\nname = \"pid\"":                                  `unknown key "colour"`,
		"name = \"x\"\nentry = \"/sys/pid\"\n[[field]]\nname = \"pid\"":                              "not under /proc",
		"name = \"x\"\n[points]\nTestEOF = -2\n[[field]]\nname = \"pid\"":                            `"TestEOF" is worth -2`,
		"name = \"x\"\n[points]\nTestEOF = nan\n[[field]]\nname = \"pid\"":                           `"TestEOF" is worth NaN`,
	}
	for text, want := range cases {
		_, err := Parse([]byte(text), "course.toml", "")
		assert.ErrorContains(t, err, want, "%s", text)
		assert.ErrorContains(t, err, "course.toml")
	}
}

// TestREADMEExampleParses keeps the README's example profile valid.
func TestREADMEExampleParses(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(b), "```toml\nname = \"course\"")
	require.True(t, ok, "the README has an example profile")
	example, _, ok := strings.Cut("name = \"course\""+rest, "```")
	require.True(t, ok)
	p, err := Parse([]byte(example), "README.md", "")
	require.NoError(t, err)
	assert.Len(t, p.Fields, 4)
	v, err := p.ParseRecord("pid: 42\nname: bash\nstate: S\ncpu: 120\n")
	require.NoError(t, err)
	assert.Equal(t, "bash", v["name"])
}
