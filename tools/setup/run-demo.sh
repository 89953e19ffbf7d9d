#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the demo.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tracejit_install_packages
tracejit_build -DTRACEJIT_BUILD_TESTS=OFF
"$TRACEJIT_BUILD/tools/demo/tracejit-demo" counter
"$TRACEJIT_BUILD/tools/demo/tracejit-demo" regression
