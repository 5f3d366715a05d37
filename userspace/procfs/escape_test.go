package procfs

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUnescapeOctal(t *testing.T) {
	for in, want := range map[string]string{
		"worker":        "worker",
		`new\012line`:   "new\nline",
		`back\134slash`: `back\slash`,
		`two words`:     "two words",
		`\377`:          "\xff",
	} {
		got, err := UnescapeOctal(in)
		assert.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{`tail\01`, `\9ab`, `\400`, `\`} {
		_, err := UnescapeOctal(bad)
		assert.Error(t, err, bad)
	}
}
