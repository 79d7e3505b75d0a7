package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/vjepa-vk/vjepa-vk/dist"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// buildCommit is the commit build.sh passes with -ldflags "-X main.buildCommit=…" ("<sha>[+dirty]"). It
// is the fallback for binaries the go command did not stamp with VCS information: those built in a git
// worktree (cmd/go only recognises a .git directory) or with -buildvcs=false.
var buildCommit string

// writeVersion prints what a bug report needs: the module version, the commit it was built from, the Go
// toolchain, the Vulkan loader and the MPI libraries (multi-GPU training) found at run time.
func writeVersion(w io.Writer) {
	loader, err := vk.LoaderVersion()
	if err != nil {
		loader = "none (" + err.Error() + ")"
	}
	bi, _ := debug.ReadBuildInfo()
	fmt.Fprint(w, versionText(bi, buildCommit, loader))
	mpi := "none found (multi-GPU training needs Open MPI or MPICH)"
	if libs := dist.Probe(); len(libs) > 0 {
		var names []string
		for _, l := range libs {
			names = append(names, fmt.Sprintf("%s (%s)", l.Version, l.Soname))
		}
		mpi = strings.Join(names, ", ")
	}
	fmt.Fprintf(w, "mpi      %s\n", mpi)
}

// versionText formats the build information; bi may be nil (a binary built without module support), and
// fallbackCommit is used when bi has no vcs.revision.
func versionText(bi *debug.BuildInfo, fallbackCommit, loader string) string {
	version, commit, when, modified := "(unknown)", "(unknown: built without VCS information)", "", false
	if fallbackCommit != "" {
		commit = fallbackCommit
	}
	if bi != nil {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if when != "" {
		commit += " (" + when
		if modified {
			commit += ", with uncommitted changes"
		}
		commit += ")"
	}
	return fmt.Sprintf("vjepa-vk %s\ncommit   %s\ngo       %s %s/%s\nvulkan   loader %s\n",
		version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH, loader)
}
