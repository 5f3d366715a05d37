package cachedir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Budget bounds what runs leave in the cache. Every entry's last use is its
// modification time: pidlab touches an entry when it reuses it.
type Budget struct {
	Runs     int           // run log folders kept, the newest
	Builds   int64         // bytes of module builds, guest binaries and initramfs archives
	Unused   time.Duration // a build or a superseded kernel unused this long goes, whatever the size
	Recent   time.Duration // an entry used this recently stays, whatever the size: a parallel run may need it
	Leftover time.Duration // a half-made entry of an interrupted run this old goes
}

// DefaultBudget is what each `mage test` and `mage validate` prunes to
// (README, "The cache").
var DefaultBudget = Budget{
	Runs:     20,
	Builds:   1 << 30,
	Unused:   14 * 24 * time.Hour,
	Recent:   time.Hour,
	Leftover: 24 * time.Hour,
}

// Pruned is what Prune removed.
type Pruned struct {
	Entries int
	Bytes   int64
}

// entry is one removable thing: a folder, or a file and its seal.
type entry struct {
	paths   []string
	size    int64
	lastUse time.Time
}

// Prune removes from the cache at dir what the budget does not keep: old
// run logs, builds unused for long or beyond the size budget (least
// recently used first), kernels superseded by a newer one of the same
// family and unused for long, and leftovers of interrupted runs.
func Prune(dir string, b Budget, now time.Time) Pruned {
	var p Pruned
	p.remove(oldRuns(filepath.Join(dir, "runs"), b.Runs, now.Add(-b.Recent)))
	p.remove(leftovers(dir, now.Add(-b.Leftover)))
	p.remove(overBudget(builds(dir), b, now))
	p.remove(supersededKernels(filepath.Join(dir, "kernels"), now.Add(-b.Unused)))
	return p
}

func (p *Pruned) remove(es []entry) {
	for _, e := range es {
		for _, path := range e.paths {
			os.RemoveAll(path)
		}
		p.Entries++
		p.Bytes += e.size
	}
}

// oldRuns are the run folders beyond the newest keep, but for those
// written since before (a long run's, still going); their names start with
// the time they began.
func oldRuns(dir string, keep int, before time.Time) []entry {
	des, _ := os.ReadDir(dir)
	var names []string
	for _, de := range des {
		if de.IsDir() {
			names = append(names, de.Name())
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	var old []entry
	for i := keep; i < len(names); i++ {
		path := filepath.Join(dir, names[i])
		if newest([]string{path, filepath.Join(path, "console.log")}).After(before) {
			continue
		}
		old = append(old, entry{paths: []string{path}, size: sizeOf(path)})
	}
	return old
}

// leftover names the staging folders and files of runs that stopped half
// way: dot-named ones, and a module build's "<key>.tmp-N"; and what a failed
// debug build keeps to be read (its log, a config Kconfig changed).
var leftover = regexp.MustCompile(`^\.|\.tmp-|\.failed\.log$|\.rejected\.config$`)

func leftovers(dir string, before time.Time) []entry {
	var es []entry
	for _, sub := range []string{"modules", "initramfs", "guestbin", "kernels"} {
		des, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, de := range des {
			path := filepath.Join(dir, sub, de.Name())
			fi, err := de.Info()
			if err != nil || !leftover.MatchString(de.Name()) || fi.ModTime().After(before) {
				continue
			}
			es = append(es, entry{paths: []string{path}, size: sizeOf(path)})
		}
	}
	return es
}

// builds are the cached module builds, guest binaries and archives.
func builds(dir string) []entry {
	var es []entry
	des, _ := os.ReadDir(filepath.Join(dir, "modules"))
	for _, de := range des {
		path := filepath.Join(dir, "modules", de.Name())
		if !de.IsDir() || leftover.MatchString(de.Name()) {
			continue
		}
		kos, _ := filepath.Glob(filepath.Join(path, "*.ko"))
		es = append(es, entry{paths: []string{path}, size: sizeOf(path), lastUse: newest(append(kos, path))})
	}
	for _, sub := range []string{"initramfs", "guestbin"} {
		des, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, de := range des {
			path := filepath.Join(dir, sub, de.Name())
			if de.IsDir() || leftover.MatchString(de.Name()) || strings.HasSuffix(de.Name(), ".sum") {
				continue
			}
			es = append(es, entry{paths: []string{path, path + ".sum"}, size: sizeOf(path) + sizeOf(path+".sum"), lastUse: newest([]string{path})})
		}
	}
	return es
}

// overBudget picks the builds to remove: those unused for b.Unused, then
// the least recently used until the rest fit b.Builds, but none used
// within b.Recent.
func overBudget(es []entry, b Budget, now time.Time) []entry {
	sort.Slice(es, func(i, j int) bool { return es[i].lastUse.After(es[j].lastUse) })
	var total int64
	var drop []entry
	for _, e := range es {
		recent := e.lastUse.After(now.Add(-b.Recent))
		if !recent && (e.lastUse.Before(now.Add(-b.Unused)) || total+e.size > b.Builds) {
			drop = append(drop, e)
			continue
		}
		total += e.size
	}
	return drop
}

// kernelFamily is what a cached kernel tree supersedes an older one of:
// Debian's flavour ("6.1.0-57-cloud-amd64" → "cloud-amd64") or "debug".
var kernelFamily = regexp.MustCompile(`^(?:6\.1\.0-\d+-(.+)|(debug)-[0-9a-f]+)$`)

// supersededKernels are the finished kernel trees that are neither the
// most recently used of their family nor used since before.
func supersededKernels(dir string, before time.Time) []entry {
	des, _ := os.ReadDir(dir)
	families := map[string][]entry{}
	for _, de := range des {
		m := kernelFamily.FindStringSubmatch(de.Name())
		if !de.IsDir() || m == nil {
			continue
		}
		path := filepath.Join(dir, de.Name())
		marker := filepath.Join(path, ".pidlab-ready")
		if _, err := os.Stat(marker); err != nil {
			continue // unfinished: a leftover, or being made now
		}
		family := m[1] + m[2]
		families[family] = append(families[family], entry{paths: []string{path}, lastUse: newest([]string{marker})})
	}
	var drop []entry
	for _, es := range families {
		sort.Slice(es, func(i, j int) bool { return es[i].lastUse.After(es[j].lastUse) })
		for _, e := range es[1:] {
			if e.lastUse.Before(before) {
				e.size = sizeOf(e.paths[0])
				drop = append(drop, e)
			}
		}
	}
	return drop
}

// newest is the latest modification time of paths.
func newest(paths []string) time.Time {
	var t time.Time
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

// sizeOf is the bytes of the files at or under path.
func sizeOf(path string) int64 {
	var n int64
	filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// Clean removes the cache at dir, but for its kernels unless kernels is
// set: they are the large part (1.9 GB with the debug build) and the
// slowest to make again.
func Clean(dir string, kernels bool) error {
	if kernels {
		return os.RemoveAll(dir)
	}
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, de := range des {
		if de.Name() != "kernels" {
			if err := os.RemoveAll(filepath.Join(dir, de.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
