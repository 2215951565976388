#!/bin/sh
# Prints the version the programs report with --version, e.g.
#   0.1.0 (git 1a2b3c4)         built from a clean checkout
#   0.1.0 (git 1a2b3c4-dirty)   with uncommitted changes to tracked files
#   0.1.0 (git unknown)         not a git checkout (a tarball, the Docker build)
# The number comes from VERSION; KP_GIT_COMMIT, when set, stands for the
# commit (e.g. passed into a Docker build, which has no .git).
# Run from the repository root (the Makefile does).
version=$(cat VERSION 2>/dev/null || echo unknown)
commit=${KP_GIT_COMMIT:-}
# Only this directory's own checkout counts: a tarball unpacked inside some
# other repository must not take that repository's commit.
if [ -z "$commit" ] && [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$(pwd -P)" ]; then
    commit=$(git rev-parse --short HEAD 2>/dev/null)
    if [ -n "$commit" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        commit="$commit-dirty"
    fi
fi
printf '%s (git %s)\n' "$version" "${commit:-unknown}"
