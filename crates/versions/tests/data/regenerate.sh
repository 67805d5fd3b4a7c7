#!/usr/bin/env bash
# Regenerates the oracle-produced case files in this folder from each ecosystem's own
# implementation (see gen_cases.py and the README.md of each folder). The Rust tests only
# read the checked-in files, so none of these tools is needed to run them.
#
# Needs (Debian): dpkg, rpm, ruby, golang-go, maven (for maven-artifact), nodejs + npm,
# python3 + pip. Reaches only the npm and PyPI registries (for `semver` and the `packaging`
# sdist). alpine/ and nuget/ are not generated here: no apk-tools or NuGet oracle is
# packaged for Debian; their READMEs say where their cases come from.
set -euo pipefail
cd "$(dirname "$0")"

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing $1: sudo apt-get install -y $2" >&2; exit 1; }; }
need dpkg dpkg
need rpm rpm
need ruby ruby
need go golang-go
need java default-jre-headless
need node nodejs
need npm npm
need python3 python3

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm install --silent --no-save semver >/dev/null)
export NPM_SEMVER_DIR="$work"

python3 -m pip download -q --no-binary :all: --no-deps -d "$work/pip" packaging
tar -xzf "$work"/pip/packaging-*.tar.gz -C "$work"
PACKAGING_SDIST=$(ls -d "$work"/packaging-*/)
export PACKAGING_SDIST

GO_SEMVER_SRC="$(go env GOROOT)/src/cmd/vendor/golang.org/x/mod/semver/semver.go"
[ -f "$GO_SEMVER_SRC" ] || { echo "no vendored x/mod/semver in $(go env GOROOT)" >&2; exit 1; }
export GO_SEMVER_SRC

MAVEN_ARTIFACT_JAR=$(ls /usr/share/maven/lib/maven-artifact*.jar 2>/dev/null | head -n1 || true)
[ -n "$MAVEN_ARTIFACT_JAR" ] || { echo "missing maven-artifact: sudo apt-get install -y maven" >&2; exit 1; }
export MAVEN_ARTIFACT_JAR

[ $# -gt 0 ] || set -- debian rpm semver pypi go maven rubygems
python3 gen_cases.py "$@"
