#!/usr/bin/env python3
"""Generates the oracle case files in this folder; run through regenerate.sh.

Each ecosystem gets a hand-picked list of nasty versions plus seeded random ones built from
that ecosystem's own token soup. The ecosystem's reference implementation decides which are
valid and how every pair compares; only its verdicts are written, as `A<TAB>op<TAB>B` lines.
"""
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 440


def soup(rng, tokens, n, lo=1, hi=7):
    out = set()
    while len(out) < n:
        out.add("".join(rng.choice(tokens) for _ in range(rng.randint(lo, hi))))
    return sorted(out)


def pairs(rng, curated, random_versions, n_random_pairs):
    """All pairs of the curated versions, then random pairs (also mixing the two lists)."""
    ps = list(itertools.combinations(curated, 2))
    ps += [(v, v) for v in curated[:20]]
    pool = curated + random_versions
    for _ in range(n_random_pairs):
        ps.append((rng.choice(pool), rng.choice(pool)))
    seen, out = set(), []
    for p in ps:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def write(path, header, rows):
    with open(os.path.join(HERE, path), "w") as f:
        for line in header:
            f.write("# " + line + "\n")
        for a, op, b in rows:
            assert "\t" not in a + b and "\n" not in a + b
            f.write(f"{a}\t{op}\t{b}\n")
    print(f"{path}: {len(rows)} cases", file=sys.stderr)


def write_invalid(path, header, versions):
    with open(os.path.join(HERE, path), "w") as f:
        f.write("# " + header + "\n")
        for v in sorted(set(versions)):
            assert "\n" not in v
            f.write(v + "\n")
    print(f"{path}: {len(set(versions))} invalid", file=sys.stderr)


def op_of(n):
    return "<" if n < 0 else ">" if n > 0 else "="


# --- Debian: dpkg --compare-versions -------------------------------------------------------

DPKG_CURATED = [
    "0", "1", "1.0", "1.0-0", "1.0-1", "1:1.0", "0:1.0", "2:0.1", "1.0~rc1", "1.0~rc1-1",
    "1.0~~", "1.0~~a", "1.0~", "1.0a", "1.0+", "1.0.", "1.0+dfsg-1", "1.0+b1", "1.0-1+b1",
    "1.0-1~bpo11+1", "1.0-1ubuntu1", "1.0-1ubuntu0.22.04.1", "1.0-1build1", "1.00", "1.000",
    "1.01", "1.1", "1.10", "1.9", "1.0a1", "1.0A", "1.0.A", "1.0-a", "1:0", "10:0",
    "2.30-1", "2.4-1", "7.4.052-1ubuntu3", "7.4.052-1ubuntu3.1", "1.2.3~git20200101.abc-1",
    "1.2.3+git20200101.abc-1", "1.2.3-1.1", "1.2.3-1.10", "1.2.3-1.2", "0.0~svn123-1",
    "1.0-1-1", "1.0-1-2", "1:1.0-1:2", "1.0:1", "a", "1.0-a~b", "1.0-+", "1.0-.",
    "4.19.0-21", "4.19.0-21+deb10u1", "5.10.0-0.bpo.15", "000001", "1~", "1~~~",
]


def debian(rng):
    rand = soup(rng, ["0", "1", "2", "9", "10", ".", "~", "+", "-", "a", "b", "Z", ":", "1:"], 220)
    for v in soup(rng, ["1", "0", ":", "-", " ", "a", "~", "-1", "1:", "x:"], 120):
        dpkg_valid(v)
    rand = [v for v in rand if dpkg_valid(v)]
    rows = []
    for a, b in pairs(rng, DPKG_CURATED, rand, 900):
        if not (dpkg_valid(a) and dpkg_valid(b)):
            continue
        if subprocess.run(["dpkg", "--compare-versions", "--", a, "lt", b], stderr=subprocess.DEVNULL).returncode == 0:
            rows.append((a, "<", b))
        elif subprocess.run(["dpkg", "--compare-versions", "--", a, "eq", b], stderr=subprocess.DEVNULL).returncode == 0:
            rows.append((a, "=", b))
        else:
            rows.append((a, ">", b))
    ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "dpkg"], capture_output=True, text=True).stdout
    write_invalid("debian/invalid.txt", f"Strings `dpkg --compare-versions` (dpkg {ver}) refuses with an error, via regenerate.sh.",
                  [v for v in _dpkg_valid if not _dpkg_valid[v] and v.strip() and not v.startswith("#")])
    write("debian/cases.tsv", [
        f"Produced by `dpkg --compare-versions A lt|eq B` (dpkg {ver}) via regenerate.sh.",
        "Versions dpkg rejects with an error are left out; ones it only warns about stay in.",
    ], rows)


_dpkg_valid = {}


def dpkg_valid(v):
    if v not in _dpkg_valid:
        r = subprocess.run(["dpkg", "--compare-versions", "--", v, "eq", v], capture_output=True, text=True)
        _dpkg_valid[v] = r.returncode == 0 and "error" not in r.stderr
    return _dpkg_valid[v]


# --- RPM: rpm.vercmp --------------------------------------------------------------------

RPM_CURATED = [
    "1", "1.0", "1.0.0", "1.0~rc1", "1.0~rc2", "1.0~~", "1.0~", "1.0^", "1.0^git1", "1.0^git2",
    "1.0^git1~pre", "1.0.1", "1.0.1^20200101", "1.0a", "1.0.a", "1a", "a", "A", "1.0_1", "1_0",
    "1.0.", "1.0..1", "1.01", "1.001", "1.1", "1.10", "1.9", "2.0", "2", "2a", "2.a", "2.0a",
    "1.0rc1", "1.0.rc1", "1.0~beta", "5.3.28", "5.3.28.1", "0.9b", "0.9.b", "1++", "1+",
    "1.0^~", "1.0~^", "1.0^^", "1.0~~~", "abc", "abd", "1.0.0.0", "10", "010", "1.2.3.el9",
    "4.18.0-372.9.1.el8", "4.18.0-372.19.1.el8_6", "1:1.0-1", "0:1.0-1", "2:0.1-1", "1.0-1",
    "1.0-2", "1.0-1.el9", "1.0-10.el9", "1.0-1.el9_1", "1.0-1~rc1", "1.0~rc1-1", "3:0",
]


def rpm(rng):
    rand = soup(rng, ["0", "1", "2", "9", "10", ".", "~", "^", "_", "+", "a", "b", "Z", "rc", "el8"], 260)
    ps = pairs(rng, RPM_CURATED, rand, 900)
    script = ["local t = {}"]
    for a, b in ps:
        script.append(f"print(rpm.vercmp({lua(a)}, {lua(b)}) .. \",\")")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write("\n".join(script) + "\n")
        path = f.name
    out = subprocess.run(["rpm", "--eval", f"%{{lua: dofile('{path}')}}"], capture_output=True, text=True, check=True).stdout
    os.unlink(path)
    results = [int(x) for x in out.replace("\n", "").split(",") if x.strip()]
    assert len(results) == len(ps), (len(results), len(ps))
    rows = []
    for (a, b), r in zip(ps, results):
        # rpm treats a missing release as matching any release; that is not an order, so
        # pairs where exactly one side has a release are left out (see src/rpm.rs).
        if has_release(a) != has_release(b):
            continue
        rows.append((a, op_of(r), b))
    ver = subprocess.run(["rpm", "--version"], capture_output=True, text=True).stdout.strip()
    write("rpm/cases.tsv", [
        f"Produced by rpm's Lua `rpm.vercmp(A, B)` ({ver}) via regenerate.sh.",
        "Pairs where only one side has a -release are left out: rpm treats a missing release as a wildcard.",
    ], rows)


def has_release(v):
    s = v.lstrip("0123456789")
    return "-" in s


def lua(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- SemVer: node-semver (npm), reused for crates.io ---------------------------------------

SEMVER_CURATED = [
    "0.0.0", "0.0.1", "0.1.0", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "1.9.0", "2.0.0", "10.0.0",
    "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
    "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0-0", "1.0.0-1", "1.0.0-10", "1.0.0-9", "1.0.0-a",
    "1.0.0-A", "1.0.0-Z", "1.0.0--", "1.0.0-0a", "1.0.0-a0", "1.0.0-alpha-1", "1.0.0-alpha.-1",
    "1.0.0-1.2.3", "1.0.0-1.2", "1.0.0-x.7.z.92", "1.0.0+build", "1.0.0+build.1",
    "1.0.0-rc.1+build.1", "1.0.0+0001", "1.0.0-beta+exp.sha.5114f85", "99999999999.0.0",
    "1.0.0-99999999999", "1.0.0-99999999998", "1.2.3-pre.0", "1.2.3-pre.00a",
]


SEMVER_INVALID_PROBES = [
    "1", "1.0", "1.0.0.0", "01.0.0", "1.00.0", "1.0.0-01", "1.0.0-", "1.0.0+", "1.0.0-a..b",
    "1.0.0+a..b", "=1.0.0", "V1.0.0", "1.0.0-a_b", "9007199254740992.0.0", "1.0.0 1", "-1.0.0",
]


def semver(rng):
    rand = []
    for _ in range(200):
        core = ".".join(str(rng.choice([0, 1, 2, 10, 11, 99])) for _ in range(3))
        pre = ".".join(rng.choice(["alpha", "beta", "rc", "0", "1", "2", "10", "a1", "A", "-", "x-y"]) for _ in range(rng.randint(0, 3)))
        build = rng.choice(["", "+b1", "+exp.sha", "+001"])
        rand.append(core + ("-" + pre if pre else "") + build)
    rand = sorted(set(rand))
    ps = pairs(rng, SEMVER_CURATED, rand, 900)
    js = """
const semver = require(process.argv[1]);
const [ps, probes] = JSON.parse(require('fs').readFileSync(0, 'utf8'));
console.log(JSON.stringify([ps.map(([a, b]) =>
  (semver.valid(a) && semver.valid(b)) ? semver.compare(a, b) : null),
  probes.filter((v) => semver.valid(v) === null)]));
"""
    mod = os.path.join(os.environ["NPM_SEMVER_DIR"], "node_modules", "semver")
    probes = sorted(set(SEMVER_CURATED + rand + SEMVER_INVALID_PROBES + soup(rng, ["1", "0", ".", "-", "+", "v", "a", "01", " "], 200)))
    out = subprocess.run(["node", "-e", js, mod], input=json.dumps([ps, probes]), capture_output=True, text=True, check=True).stdout
    res, invalid = json.loads(out)
    rows = [(a, op_of(r), b) for (a, b), r in zip(ps, res) if r is not None]
    ver = json.load(open(os.path.join(mod, "package.json")))["version"]
    header = [
        f"Produced by node-semver {ver} (npm package `semver`): `semver.compare(A, B)`, via regenerate.sh.",
        "Pairs where `semver.valid` rejects either side are left out. Used for npm and crates.io (both SemVer 2.0.0).",
    ]
    write("semver/cases.tsv", header, rows)
    write_invalid("semver/invalid.txt", f"Strings node-semver {ver} `semver.valid` rejects, via regenerate.sh (checked for npm only).",
                  [v for v in invalid if v.strip() == v])


# --- PyPI: packaging.version.Version ---------------------------------------------------------

PEP440_CURATED = [
    "1.0RC1", "1.0rc1", "1.0-post1", "1.0.post1", "1.0post1", "1.0-1", "1.0_1", "v1.0", "V1.0",
    "1.0", "1", "1.0.0", "1.0.0.0", "0!1.0", "1!0.1", "1.0.dev", "1.0.dev0", "1.0-dev0",
    "1.0a", "1.0alpha", "1.0.alpha.1", "1.0-a-1", "1.0beta", "1.0b", "1.0c", "1.0pre", "1.0preview2",
    "1.0rev", "1.0r", "1.0.post", "1.0.POST", "1.0+local", "1.0+LOCAL.1", "1.0+local-1",
    "1.0+local_1", "1.0+1", "1.0+01", "1.0+a.1", "1.0+1.a", " 1.0 ", "1.0a1.post1.dev1",
    "1.0a1-1", "1.0.post1.dev1", "1.0a.post", "1.0a-", "1.0.0.post0", "1.01", "1.1",
    "1.0.dev1+local", "01.0", "1.0a01", "2.0.0rc1", "1.0b2-346",
]


def pypi(rng):
    src = os.environ["PACKAGING_SDIST"]
    import ast

    sys.path.insert(0, os.path.join(src, "src"))
    import packaging.version as pv  # the sdist's own copy, first on the path

    assert pv.__file__.startswith(src), pv.__file__
    sdist = os.path.basename(src.rstrip("/"))

    text = open(os.path.join(src, "tests", "test_version.py")).read()
    tree = ast.parse(text)
    versions = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "VERSIONS":
            versions = ast.literal_eval(node.value)
    assert versions, "VERSIONS not found in test_version.py"
    # The published list is in ascending order; every pair of it is a case.
    published = []
    for i, a in enumerate(versions):
        for b in versions[i + 1:]:
            c = (pv.Version(a) > pv.Version(b)) - (pv.Version(a) < pv.Version(b))
            published.append((a, op_of(c), b))
    write("pypi/published.tsv", [
        f"Every pair of the ascending VERSIONS list in tests/test_version.py of the {sdist} sdist",
        "(`pip download --no-binary :all: --no-deps packaging`), each verdict from that sdist's packaging.version.Version; via regenerate.sh.",
    ], published)

    rand = soup(rng, ["1", "0", "2", ".", "a", "b", "rc", "c", "post", "dev", "-", "_", "+l", "!", "r", "10", "pre"], 400)
    valid = []
    for v in PEP440_CURATED + rand:
        try:
            pv.Version(v)
            valid.append(v)
        except pv.InvalidVersion:
            pass
    cur = [v for v in PEP440_CURATED if v in valid]
    rnd = [v for v in rand if v in valid]
    rows = []
    for a, b in pairs(rng, cur, rnd, 1200):
        x, y = pv.Version(a), pv.Version(b)
        rows.append((a, op_of((x > y) - (x < y)), b))
    write("pypi/cases.tsv", [
        f"Produced by packaging.version.Version of the {sdist} sdist, via regenerate.sh.",
    ], rows)
    invalid = [v for v in PEP440_CURATED + rand if v not in valid]
    with open(os.path.join(HERE, "pypi/invalid.txt"), "w") as f:
        f.write(f"# Strings packaging.version.Version of the {sdist} sdist rejects (InvalidVersion), via regenerate.sh.\n")
        for v in invalid:
            f.write(v + "\n")


# --- Go: golang.org/x/mod/semver --------------------------------------------------------------

GO_CURATED = [
    "v0.0.0", "v1", "v1.0", "v1.0.0", "v1.2", "v1.2.0", "v1.2.3", "v1.10.0", "v1.9.0", "v2.0.0",
    "v2.0.0+incompatible", "v2.1.0+incompatible", "v1.0.0-rc.1", "v1.0.0-rc.2", "v1.0.0-alpha",
    "v1.0.0-alpha.1", "v1.0.0-0", "v1.0.0-1", "v1.0.0-10", "v1.0.0-a", "v1.0.0--",
    "v0.0.0-20210101000000-abcdef123456", "v0.0.0-20201231235959-abcdef123456",
    "v1.2.4-0.20210101000000-abcdef123456", "v1.2.3-pre.0.20210101000000-abcdef123456",
    "v1.2.3-0.20191109021931-daa7c04131f5", "v1.0.0+meta", "v1.0.0-rc.1+meta",
    "v100000000000000000000.0.0", "v99999999999999999999.0.0", "1.0.0", "v01.0.0", "v1.0.0-01",
    "v1.2-pre", "v1.0.0-", "v1.0.0+", "v1..0",
]

GO_MAIN = """
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"oracle/semver"
)

func main() {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		p := strings.SplitN(sc.Text(), "\\t", 2)
		if !semver.IsValid(p[0]) || !semver.IsValid(p[1]) {
			fmt.Println("invalid")
			continue
		}
		fmt.Println(semver.Compare(p[0], p[1]))
	}
}
"""


def go(rng):
    src = os.environ["GO_SEMVER_SRC"]
    rand = []
    for _ in range(200):
        core = "v" + ".".join(str(rng.choice([0, 1, 2, 10])) for _ in range(rng.randint(1, 3)))
        if core.count(".") == 2:
            pre = ".".join(rng.choice(["alpha", "rc", "0", "1", "20210101000000-abcdef123456", "x"]) for _ in range(rng.randint(0, 3)))
            core += ("-" + pre if pre else "") + rng.choice(["", "+incompatible", "+meta"])
        rand.append(core)
    rand = sorted(set(rand))
    ps = pairs(rng, GO_CURATED, rand, 900)
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "semver"))
        with open(os.path.join(src)) as f, open(os.path.join(d, "semver", "semver.go"), "w") as g:
            g.write(f.read())
        with open(os.path.join(d, "main.go"), "w") as f:
            f.write(GO_MAIN)
        with open(os.path.join(d, "go.mod"), "w") as f:
            f.write("module oracle\n\ngo 1.19\n")
        env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", GOCACHE=os.path.join(d, "cache"))
        out = subprocess.run(["go", "run", "."], cwd=d, env=env, input="\n".join(f"{a}\t{b}" for a, b in ps) + "\n",
                             capture_output=True, text=True, check=True).stdout.split()
    assert len(out) == len(ps)
    rows = [(a, op_of(int(r)), b) for (a, b), r in zip(ps, out) if r != "invalid"]
    invalid = sorted({v for (a, b), r in zip(ps, out) if r == "invalid" for v in (a, b)} - {a for a, _, _ in rows} - {b for _, _, b in rows})
    ver = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    write("go/cases.tsv", [
        f"Produced by golang.org/x/mod/semver.Compare as vendored in the Go toolchain ({ver}:",
        "$(go env GOROOT)/src/cmd/vendor/golang.org/x/mod/semver/semver.go), via regenerate.sh.",
        "Pairs where semver.IsValid rejects either side are left out.",
    ], rows)
    with open(os.path.join(HERE, "go/invalid.txt"), "w") as f:
        f.write("# Strings golang.org/x/mod/semver.IsValid rejects (same source), via regenerate.sh.\n")
        for v in invalid:
            f.write(v + "\n")


# --- Maven: ComparableVersion -------------------------------------------------------------------

MAVEN_CURATED = [
    "1", "1.0", "1.0.0", "1-0", "1.0-0", "1-ga", "1-final", "1-release", "1.0.final", "1-GA",
    "1-alpha", "1-alpha1", "1-a1", "1a1", "1-alpha-1", "1.0-alpha-1", "1-beta", "1-b1", "1b",
    "1-milestone", "1-m1", "1m1", "1-rc", "1-rc1", "1-cr1", "1-CR1", "1-snapshot", "1-SNAPSHOT",
    "1.0-SNAPSHOT", "1-sp", "1-sp1", "1-foo", "1-bar", "1-xyz", "1-1", "1.1", "1-2", "1.0.1",
    "1-0.1", "1.0-1", "1.0.0-1", "1.1-alpha", "1.1.alpha", "1-a", "1-b", "1-m", "1.0.RELEASE",
    "2.0", "2.0.0.RC1", "2.0.0.M1", "10", "9", "1.0.0.0.0.1", "1-1-1", "1..1", "1.-1", "1--1",
    "1.0-alpha.1", "1-123456789012345678901234567890", "1-12345678901234567890",
    "1.2.3-SNAPSHOT", "3.8.7", "1.0.0-b2", "1.0.0.beta2", "1.0-dev", "1.0-preview",
    "1.0.0.Final", "5.3.20.RELEASE", "2.12.7.1", "1.0sp", "1.0-sp-1", "1ga", "1_0",
]


def maven(rng):
    jar = os.environ["MAVEN_ARTIFACT_JAR"]
    rand = soup(rng, ["1", "0", "2", "10", ".", "-", "a", "b", "m", "rc", "cr", "sp", "ga", "final", "snapshot", "alpha", "x", "Z"], 300)
    rand = [v for v in rand if v]
    ps = pairs(rng, MAVEN_CURATED, rand, 1000)
    rows = []
    # ComparableVersion's main compares each argument with the next one; feeding the pairs
    # flat compares every pair (and, in between, consecutive pairs, also kept as cases).
    for i in range(0, len(ps), 200):
        chunk = ps[i:i + 200]
        args = [v for p in chunk for v in p]
        out = subprocess.run(["java", "-cp", jar, "org.apache.maven.artifact.versioning.ComparableVersion", *args],
                             capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if not line.startswith("   "):
                continue
            parts = line.strip().split(" ")
            assert len(parts) == 3, line
            a, op, b = parts
            rows.append((a, {"<": "<", ">": ">", "==": "="}[op], b))
    write("maven/cases.tsv", [
        f"Produced by Maven's own ComparableVersion main ({os.path.realpath(jar)}, Debian maven package),",
        "`java -cp <jar> org.apache.maven.artifact.versioning.ComparableVersion A B ...`, via regenerate.sh.",
    ], rows)


# --- RubyGems: Gem::Version ----------------------------------------------------------------

GEM_CURATED = [
    "1", "1.0", "1.0.0", "1.0.a", "1.0a", "1.0.a1", "1.0.a.1", "1.0.b", "1.0.rc1", "1.0.pre",
    "1.0-pre", "1.0-1", "1.0.pre.1", "1.0.A", "1.0.Z", "1.0.z", "1.a", "1.a.0", "1.0.0.a",
    "0.9", "1.1", "1.10", "1.9", "2", "1.0.1", "1.0.0.1", "1.0.beta.2", "1.0.beta.10",
    "1.0.0-rc1", "2.0.0.alpha", "2.0.0.alpha1", " 1.0 ", "10.0", "01.0", "1.01", "1.0.x.y",
    "1.0--1", "3.2.1.rc.2", "5.0.0.beta1", "5.0.0.racecar1", "1.2.3.4.5.6",
]

RUBY = r"""
require 'json'
ps, probes = JSON.parse(STDIN.read)
puts JSON.generate(ps.map { |a, b|
  (Gem::Version.correct?(a) && Gem::Version.correct?(b)) ? (Gem::Version.new(a) <=> Gem::Version.new(b)) : nil
})
puts JSON.generate(probes.reject { |v| Gem::Version.correct?(v) })
puts Gem::VERSION
"""


def rubygems(rng):
    rand = soup(rng, ["1", "0", "2", "10", ".", "-", "a", "b", "rc", "pre", "A", "z"], 300)
    ps = pairs(rng, GEM_CURATED, rand, 1000)
    probes = sorted(set(GEM_CURATED + rand + ["1..0", ".1", "1.", "1-", "a", "1.0_1", "1 0", "1.0+1", "-1"]))
    out = subprocess.run(["ruby", "-e", RUBY], input=json.dumps([ps, probes]), capture_output=True, text=True, check=True).stdout.splitlines()
    res = json.loads(out[0])
    invalid = json.loads(out[1])
    rows = [(a, op_of(r), b) for (a, b), r in zip(ps, res) if r is not None and a.strip() and b.strip()]
    write("rubygems/cases.tsv", [
        f"Produced by RubyGems {out[2]} `Gem::Version.new(A) <=> Gem::Version.new(B)` (Debian ruby), via regenerate.sh.",
        "Pairs where Gem::Version.correct? rejects either side are left out.",
    ], rows)
    write_invalid("rubygems/invalid.txt", f"Strings RubyGems {out[2]} `Gem::Version.correct?` rejects, via regenerate.sh.", invalid)


def main():
    rng = random.Random(SEED)
    for name in sys.argv[1:]:
        globals()[name](random.Random(f"{SEED}-{name}"))


if __name__ == "__main__":
    main()
