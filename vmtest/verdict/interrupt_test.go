package verdict

import (
	"context"
	"fmt"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exitError runs sh to end as script says, for a real *exec.ExitError.
func exitError(t *testing.T, script string) error {
	t.Helper()
	err := exec.Command("sh", "-c", script).Run()
	require.Error(t, err, "sh -c %q must fail", script)
	return fmt.Errorf("make: %w", err)
}

func TestWasInterrupted(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"no error on a live context", live, nil, false},
		{"a build failure", live, Errorf(BuildFailed, "the module did not build"), false},
		{"a command that failed on its own", live, exitError(t, "exit 2"), false},
		{"any error once the context is cancelled", cancelled, Errorf(BuildFailed, "make: signal: killed"), true},
		{"a context.Canceled, wrapped", live, fmt.Errorf("go build: %w", context.Canceled), true},
		{"a command killed by Ctrl-C's SIGINT", live, exitError(t, "kill -INT $$"), true},
		{"a command killed by SIGTERM", live, exitError(t, "kill -TERM $$"), true},
		{"a command killed by SIGKILL (OOM, say) on a live context", live, exitError(t, "kill -KILL $$"), false},
		{"a command killed by SIGSEGV", live, exitError(t, "kill -SEGV $$"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, WasInterrupted(tc.ctx, tc.err), "WasInterrupted(%v)", tc.err)
		})
	}
}

func TestInterruptionVerdict(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	err := Interrupting(cancelled, Errorf(BuildFailed, "make: signal: killed"), "building the module")
	assert.Equal(t, Interrupted, CodeOf(err), "code of a build cut short by a cancelled context")
	assert.Equal(t, 130, int(CodeOf(err)), "exit code of an interrupted run, as a shell reports Ctrl-C")
	assert.Equal(t, "interrupted while building the module", err.Error(), "message")
	assert.Equal(t, "interrupted", Interrupted.String(), "the code's name")

	own := Errorf(BuildFailed, "proc_create: incompatible pointer type")
	assert.Same(t, own, Interrupting(context.Background(), own, "building the module"), "a failure of its own stays itself")
	assert.Nil(t, Interrupting(cancelled, nil, "building the module"), "no error: nothing was cut short")
}
