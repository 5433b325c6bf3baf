#!/usr/bin/env python3
"""Writes THIRD-PARTY-LICENSES: name, version and licence of every crate that
goes into the xdpacct binary, followed by each crate's own licence and notice
files as shipped in its source (what MIT/BSD/Apache attribution asks for).

Offline: uses `cargo metadata` (crates already downloaded by the build).
Dev-dependencies are left out (they are not shipped); build-dependencies and
proc-macros are listed, marked "build", since they generate shipped code.

usage: third_party_licenses.py [OUTPUT]   (default: stdout)
"""
import json
import os
import subprocess
import sys

TARGET = "x86_64-unknown-linux-gnu"
LICENSE_PREFIXES = ("license", "licence", "copying", "notice", "copyright", "authors")


def metadata(root):
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--filter-platform", TARGET],
        cwd=root, check=True, stdout=subprocess.PIPE).stdout
    return json.loads(out)


def shipped(meta):
    """Package ids reachable from the root through normal and build edges, with
    whether they are reachable through normal edges only (i.e. linked in)."""
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    macros = {p["id"] for p in meta["packages"]
              if any("proc-macro" in t["kind"] for t in p["targets"])}
    root = meta["resolve"]["root"]
    kinds = {}  # id -> "runtime" | "build"
    stack = [(root, "runtime")]
    while stack:
        pid, kind = stack.pop()
        if kinds.get(pid) == "runtime":
            continue
        if pid in macros:
            kind = "build"  # runs in the compiler, is not linked in
        if kinds.get(pid) == kind:
            continue
        kinds[pid] = kind
        for dep in nodes[pid]["deps"]:
            dk = {k["kind"] for k in dep["dep_kinds"]}
            if dk == {"dev"}:
                continue
            child = kind
            if None not in dk and "normal" not in dk:
                child = "build"
            stack.append((dep["pkg"], child))
    kinds.pop(root, None)
    return kinds


def licence_files(pkg):
    d = os.path.dirname(pkg["manifest_path"])
    files = []
    if pkg.get("license_file"):
        files.append(os.path.join(d, pkg["license_file"]))
    try:
        for f in sorted(os.listdir(d)):
            p = os.path.join(d, f)
            if f.lower().startswith(LICENSE_PREFIXES) and os.path.isfile(p) and p not in files:
                files.append(p)
    except OSError:
        pass
    return files


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    meta = metadata(root)
    kinds = shipped(meta)
    pkgs = sorted((p for p in meta["packages"] if p["id"] in kinds),
                  key=lambda p: (p["name"], p["version"]))
    me = next(p for p in meta["packages"] if p["id"] == meta["resolve"]["root"])
    out = []
    w = out.append
    w(f"Third-party software in {me['name']} {me['version']}")
    w("=" * 60)
    w("")
    w(f"{me['name']} itself is licensed under {me.get('license')}.")
    w(f"It is built from the following {len(pkgs)} Rust crates (crates.io), listed")
    w("as name, version, licence (SPDX expression as declared by the crate) and")
    w('whether the crate is linked into the binary ("runtime") or only used')
    w('while building it ("build": build scripts, procedural macros).')
    w("Each crate's licence and notice files follow the list.")
    w("")
    width = max(len(p["name"]) for p in pkgs)
    vwidth = max(len(p["version"]) for p in pkgs)
    for p in pkgs:
        lic = p.get("license") or ("see " + p["license_file"] if p.get("license_file") else "UNKNOWN")
        w(f"{p['name']:<{width}}  {p['version']:<{vwidth}}  {kinds[p['id']]:<7}  {lic}")
    w("")
    counts = {}
    for p in pkgs:
        counts[p.get("license") or "UNKNOWN"] = counts.get(p.get("license") or "UNKNOWN", 0) + 1
    w("Licence expressions used:")
    for lic, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        w(f"  {n:4}  {lic}")
    w("")
    for p in pkgs:
        w("")
        w("-" * 78)
        w(f"{p['name']} {p['version']}  ({p.get('license') or 'no SPDX licence declared'})")
        if p.get("repository"):
            w(f"Source: {p['repository']}")
        w("-" * 78)
        files = licence_files(p)
        if not files:
            w("(the crate ships no licence file; its declared licence is above)")
        for f in files:
            w(f"--- {os.path.basename(f)} ---")
            with open(f, encoding="utf-8", errors="replace") as fh:
                w(fh.read().rstrip())
    text = "\n".join(out) + "\n"
    if len(sys.argv) > 1:
        os.makedirs(os.path.dirname(os.path.abspath(sys.argv[1])), exist_ok=True)
        with open(sys.argv[1], "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"{sys.argv[1]}: {len(pkgs)} crates", file=sys.stderr)
    else:
        sys.stdout.write(text)
    unknown = [p["name"] for p in pkgs if not p.get("license") and not p.get("license_file")]
    if unknown:
        print("third_party_licenses: no licence declared by: " + ", ".join(unknown), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
