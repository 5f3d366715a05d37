// Command pidlab-guest is the u-root uinit of a pidlab VM: it runs the
// manifest written by the host (the tests, or a shell for a person), then
// reboots, which ends QEMU.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/pidlab/pidlab/userspace/guest"
	"github.com/pidlab/pidlab/userspace/guestapi"
)

func main() {
	if err := run(); err != nil {
		log.Printf("pidlab-guest: %v", err)
	}
	if err := guest.Reboot(); err != nil {
		log.Fatalf("pidlab-guest: reboot: %v", err)
	}
}

func run() error {
	// u-root records its private (0700) build folder as the archive's
	// root; open / up so the tests' targets running as other users work.
	if err := os.Chmod("/", 0o755); err != nil {
		return err
	}
	m, err := readManifest(guestapi.ManifestPath)
	if err != nil {
		return err
	}
	if m.Shell {
		return runShell(m)
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	args, err := guestapi.RunArgs(string(cmdline))
	if err != nil {
		return err
	}
	m = m.WithArgs(args)
	port, err := os.OpenFile(guestapi.ResultsPort, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening the results channel: %w", err)
	}
	defer port.Close()
	if err := guest.MakeRaw(port); err != nil {
		return fmt.Errorf("raw mode on %s: %w", guestapi.ResultsPort, err)
	}
	r := &guest.Runner{Sys: guest.LinuxSystem{}, Manifest: m, Out: port}
	runErr := r.Run(context.Background())
	if err := guest.Drain(port); err != nil {
		log.Printf("pidlab-guest: draining %s: %v", guestapi.ResultsPort, err)
	}
	return runErr
}

func readManifest(path string) (guestapi.Manifest, error) {
	var m guestapi.Manifest
	b, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("reading the manifest: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("parsing %s: %w", path, err)
	}
	return m, nil
}
