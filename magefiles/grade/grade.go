// Package grade is the grade namespace of pidlab's mage targets (the
// magefile imports it as grade:), so that `go tool mage grade DIR` and
// `go tool mage grade:merge` can both be: a Go package cannot hold a
// Grade function and a Grade namespace type.
package grade

import (
	"context"
	"os"

	"github.com/magefile/mage/mg"

	"github.com/pidlab/pidlab/vmtest/targets"
)

// Merge merges the output folders of a class's shards (OUTS: folders or quoted patterns like 'shard-*', separated by commas) into one class report in PIDLAB_GRADE_OUT.
func Merge(ctx context.Context, outs string) error {
	dir, _ := os.Getwd() // mage runs in the repository's root
	return targets.GradeMerge(ctx, targets.Options{RepoDir: dir, Out: os.Stdout, Verbose: mg.Verbose()}, outs)
}
