#!/usr/bin/env bash
# README command 2: install what is missing, build, and run the whole test suite.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tracejit_install_packages
tracejit_build
ctest --test-dir "$TRACEJIT_BUILD" --output-on-failure -j "$(nproc)"
