#!/usr/bin/env python3
"""Regenerate (or check) the README's Quick start examples from the binary.

Every `$ regsweep ...` line of the Quick start section that runs on the
shipped fixture (`fixtures/registry`, or `reg`, a copy of it) is run, in
order, in a scratch directory; the lines printed under it in the README
are replaced by what the command prints (standard output, then standard
error). A block the README cuts with a `...` line keeps as many lines
before and after the cut as it had; delete and prune plans show digests
shortened to 8 hex digits, as the README says.

    python3 scripts/readme_examples.py --bin target/release/regsweep          # rewrite README.md
    python3 scripts/readme_examples.py --bin target/release/regsweep --check  # exit 1 on a difference

--check compares with ages ("1 hour ago"), rates and runs of spaces
normalised: they depend on when the checkout was made and on the machine.
An `--apply` runs with `--settle=0s`: nothing else writes to the scratch
copy, so waiting would change nothing it prints.
"""

import argparse
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = ("## Quick start", "### From cron")
PROMPT = "    $ regsweep "
LOCAL = re.compile(r"(^| )(fixtures/registry|reg)( |$)")


def shorten(line):
    return re.sub(r"sha256([:-])([0-9a-f]{8})[0-9a-f]{56}", r"sha256\1\2…", line)


def normalise(line):
    line = re.sub(r"(\d+ (second|minute|hour|day|month|year)s? ago|just now)", "<ago>", line)
    line = re.sub(r"in [\d.]+ s, [\d.]+ [KMGT]?i?B/s", "in <time>, <rate>", line)
    return re.sub(r" +", " ", line).strip()


def run(cmd, bin_path, work):
    args = shlex.split(cmd, comments=True)
    args[0] = bin_path
    args = [a.replace("/var/tmp/q", os.path.join(work, "q")) for a in args]
    if "--apply" in args and not any(a.startswith("--settle") for a in args):
        # An online apply waits a settle period between its looks; on a
        # scratch copy nothing moves meanwhile, and what it prints is the same.
        args.append("--settle=0s")
    p = subprocess.run(args, cwd=work, capture_output=True, text=True)

    def lines(out):
        out = out.replace(os.path.join(work, "q"), "/var/tmp/q")
        ls = out.rstrip("\n").split("\n") if out.strip() else []
        if args[1] in ("delete", "prune"):
            ls = [shorten(l) for l in ls]
        return ["    " + l if l else "" for l in ls]

    return lines(p.stdout), lines(p.stderr)


def block_end(text, i, end):
    """Where the output block that starts at line `i` ends: indented lines,
    and blank lines followed by more of them (not by the next prompt)."""
    j = i
    while j < end:
        if text[j].startswith("    ") and not text[j].startswith(PROMPT):
            j += 1
            continue
        if text[j] == "":
            k = j
            while k < end and text[k] == "":
                k += 1
            if k < end and text[k].startswith("    ") and not text[k].startswith(PROMPT):
                j = k
                continue
        break
    return j


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="the regsweep binary")
    ap.add_argument("--check", action="store_true", help="compare, do not write")
    ap.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    a = ap.parse_args()
    bin_path = os.path.abspath(a.bin)
    text = open(a.readme, encoding="utf-8").read().split("\n")
    start = next(i for i, l in enumerate(text) if l.startswith(SECTION[0]))
    end = next(i for i, l in enumerate(text) if l.startswith(SECTION[1]))
    work = tempfile.mkdtemp(prefix="regsweep-readme-")
    try:
        shutil.copytree(os.path.join(ROOT, "fixtures/registry"),
                        os.path.join(work, "fixtures/registry"), symlinks=True)
        shutil.copytree(os.path.join(ROOT, "fixtures/registry"),
                        os.path.join(work, "reg"), symlinks=True)
        out, i, diffs = text[:start], start, []
        while i < end:
            line = text[i]
            out.append(line)
            i += 1
            if not line.startswith(PROMPT):
                continue
            cmd = line[len("    $ "):]
            while cmd.endswith("\\"):
                cmd = cmd[:-1] + text[i].strip()
                out.append(text[i])
                i += 1
            if not LOCAL.search(cmd):
                continue
            j = block_end(text, i, end)
            old = text[i:j]
            stdout, stderr = run(cmd, bin_path, work)
            if not old:
                # The README shows no output for it: run for its effect.
                continue
            # A cut keeps as many lines of standard output before and after
            # it as the README had; standard error follows.
            cut = [n for n, l in enumerate(old) if l.strip() == "..."]
            if cut:
                k = cut[0]
                tail = len(old) - k - 1 - len([l for l in old[k + 1:] if l.startswith("    regsweep: ")])
                if len(stdout) > k + tail:
                    stdout = stdout[:k] + [old[k]] + (stdout[len(stdout) - tail:] if tail else [])
            new = stdout + stderr
            if [normalise(l) for l in old] != [normalise(l) for l in new]:
                diffs.append("\n".join(difflib.unified_diff(old, new, cmd, cmd, lineterm="")))
            out.extend(new)
            i = j
        out.extend(text[end:])
    finally:
        shutil.rmtree(work)
    if a.check:
        if diffs:
            print("README examples differ from the binary's output "
                  "(python3 scripts/readme_examples.py --bin BIN rewrites them):")
            print("\n\n".join(diffs))
            return 1
        return 0
    open(a.readme, "w", encoding="utf-8").write("\n".join(out))
    print(f"{len(diffs)} example(s) rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
