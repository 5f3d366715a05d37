package vmtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pidlab/pidlab/userspace/guestapi"
)

// A run of benchmarks runs no test: -test.run matches nothing.
func TestRunArgsOfABenchRun(t *testing.T) {
	assert.Equal(t, []string{"-test.timeout=2m0s", "-test.run=TestRead"}, runArgs(Config{TestRun: "TestRead"}, 2*time.Minute))
	assert.Equal(t, []string{"-test.timeout=2m0s", "-test.run=^$", "-test.bench=.", "-test.benchtime=5s"}, runArgs(Config{TestRun: "TestRead", Bench: "."}, 2*time.Minute))
}

// A benchmark function runs again as b.N grows: its last figures stand.
func TestFiguresKeepTheLastValue(t *testing.T) {
	var figs []guestapi.Figure
	figs = addFigure(figs, guestapi.Figure{Test: "BenchmarkA", Name: "ratio", Value: 1.2})
	figs = addFigure(figs, guestapi.Figure{Test: "BenchmarkA", Name: "ns/op", Value: 900})
	figs = addFigure(figs, guestapi.Figure{Test: "BenchmarkA", Name: "ratio", Value: 1.05})
	figs = addFigure(figs, guestapi.Figure{Test: "BenchmarkB", Name: "ratio", Value: 2})
	assert.Equal(t, []guestapi.Figure{{Test: "BenchmarkA", Name: "ratio", Value: 1.05}, {Test: "BenchmarkA", Name: "ns/op", Value: 900},
		{Test: "BenchmarkB", Name: "ratio", Value: 2}}, figs)
}
