package kernel

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The uapi header that pidlab's kernel patch adds is the one module/pidinfo
// and its tests include: one ABI for the system call and the ioctl.
func TestPidInfoPatchAddsTheModulesHeader(t *testing.T) {
	patch, err := descriptionFile("pid_info.patch")
	require.NoError(t, err)
	added, ok := addedFile(patch, "include/uapi/linux/pid_info.h")
	require.True(t, ok, "pid_info.patch adds include/uapi/linux/pid_info.h")
	header, err := os.ReadFile("../../module/pidinfo/pid_info.h")
	require.NoError(t, err)
	assert.Equal(t, string(header), added, "module/pidinfo/pid_info.h and the patch's header differ: copy one to the other")

	debug, ok := Describe(DebugName)
	require.True(t, ok)
	assert.Contains(t, debug.Patches, "pid_info.patch", "the debug kernel carries the system calls")
}

// addedFile is the text of a file a unified diff creates (its "+" lines).
func addedFile(patch, name string) (string, bool) {
	var b strings.Builder
	in, found := false, false
	for _, line := range strings.Split(patch, "\n") {
		switch {
		case strings.HasPrefix(line, "+++ "):
			in = strings.TrimPrefix(line, "+++ b/") == name
			found = found || in
		case strings.HasPrefix(line, "--- "):
			in = false
		case in && strings.HasPrefix(line, "+"):
			b.WriteString(line[1:] + "\n")
		}
	}
	return b.String(), found
}
