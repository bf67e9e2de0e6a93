#!/usr/bin/env python3
"""The benchmark harness behind bench/run.sh (see bench/README.md).

For each fleet size N: generate the fleet, time dify-cfg's commands and the
peers on it (median of BENCH_RUNS runs, wall time and peak RSS through
/usr/bin/time), compare Kapitan's output with dify-cfg's, and write
bench/RESULTS.md with the machine, one table per N, the ratios and the
targets of issue 6.

Python 3 standard library only. Run through bench/run.sh, which builds the
binaries and installs Kapitan first.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EDIT_SITE = "site-00000"

# Rows of the per-N table: key, label, what it measures.
ROWS = [
    ("check", "dify-cfg check", "load, parse, resolve and validate the fleet; writes nothing"),
    ("build", "dify-cfg build, fresh out dir", "full build into an empty out/"),
    ("noop", "dify-cfg build, no-op", "build again over an up-to-date out/"),
    ("edit1", "dify-cfg build, one site edited", "build after changing one site file's description"),
    ("commit", "dify-cfg commit, all branches", "every site branch committed on a fresh repository"),
    ("audit", "dify-cfg audit, all branches", "every site branch recompiled from git and compared"),
    ("kapitan", "Kapitan compile (peer)", "the same fleet as Kapitan targets, same templates and values"),
    ("gitcli", "git CLI commits (peer)", "the same per-site commits with git plumbing, one site after another"),
    ("floor", "copy + sha256 (floor)", "tar the rendered out/ into a new directory, sha256sum every file"),
]
LABEL = {k: l for k, l, _ in ROWS}


def log(msg):
    print(f"[bench {datetime.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


class Failed(Exception):
    pass


def run(cmd, cwd=None, env=None, check=True, stdout=subprocess.DEVNULL):
    cmd = [str(c) for c in cmd]
    r = subprocess.run(cmd, cwd=cwd, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise Failed(f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stderr[-4000:]}")
    return r


def timed(cmd, cwd=None, env=None, ok=(0,), capture=False):
    """Run cmd under /usr/bin/time; return wall seconds and peak RSS KiB
    (and the command's output when `capture`)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        full = ["/usr/bin/time", "-f", "%e %M", "-o", tf.name, *map(str, cmd)]
        t0 = time.perf_counter()
        r = subprocess.run(full, cwd=cwd, env=env,
                           stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        if r.returncode not in ok:
            raise Failed(f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stderr[-4000:]}")
        fields = tf.read().split()
    # /usr/bin/time's %e has a resolution of 10 ms; the harness's own clock
    # (which also counts /usr/bin/time's fork and exec, ~1 ms) is finer.
    res = {"wall": wall, "e": float(fields[-2]), "rss_kib": int(fields[-1])}
    if capture:
        res["output"] = (r.stdout or "") + (r.stderr or "")
    return res


def measure(name, runs, prepare, cmd, phases=None, **kw):
    samples = []
    for i in range(runs):
        if prepare:
            prepare(i)
        s = timed(cmd(i) if callable(cmd) else cmd, capture=phases is not None, **kw)
        if phases is not None:
            s.update(phases(s.pop("output")))
        samples.append(s)
    walls = [s["wall"] for s in samples]
    rss = [s["rss_kib"] for s in samples]
    res = {
        "wall": statistics.median(walls),
        "wall_min": min(walls),
        "wall_max": max(walls),
        "rss_kib": statistics.median(rss),
        "rss_kib_max": max(rss),
        "runs": runs,
        "samples": samples,
    }
    log(f"  {name}: median {res['wall']:.3f} s, peak RSS {res['rss_kib'] / 1024:.1f} MiB ({runs} runs)")
    return res


def rmtree(p):
    shutil.rmtree(p, ignore_errors=True)


def restore_git(root, pristine):
    rmtree(root / ".git")
    shutil.copytree(pristine, root / ".git", symlinks=True)


# ---------------------------------------------------------------------------
# Kapitan


def kapitan_phases(output):
    """Kapitan's own account of its run: inventory rendering and compiling."""
    res = {}
    m = re.search(r"Rendered inventory \(([0-9.]+)s\)", output)
    if m:
        res["inventory"] = float(m.group(1))
    m = re.search(r"Compiled \d+ targets in ([0-9.]+)s", output)
    if m:
        res["compile"] = float(m.group(1))
    return res


def compare_outputs(out_dir, compiled_dir, sites):
    """Compare dify-cfg's and Kapitan's files for some sites."""
    report = {"sites": [], "identical": 0, "newline_only": 0, "differ": [], "missing": [], "only_dify_cfg": []}
    for site in sites:
        a_root, b_root = out_dir / site, compiled_dir / site
        report["sites"].append(site)
        for a in sorted(p for p in a_root.rglob("*") if p.is_file()):
            rel = a.relative_to(a_root).as_posix()
            b = b_root / rel
            if rel == "manifest.json":
                report["only_dify_cfg"].append(f"{site}/{rel}")
                continue
            if not b.is_file():
                report["missing"].append(f"{site}/{rel}")
                continue
            x, y = a.read_bytes(), b.read_bytes()
            if x == y:
                report["identical"] += 1
            elif x.rstrip(b"\n") == y.rstrip(b"\n"):
                report["newline_only"] += 1
            else:
                diff = run(["diff", "-u", str(a), str(b)], check=False, stdout=subprocess.PIPE).stdout
                report["differ"].append({"file": f"{site}/{rel}", "diff": diff[:3000]})
    return report


def sample_sites(out_dir, k=6):
    sites = sorted(p.name for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith("_"))
    helm = [s for s in sites if (out_dir / s / "helm").is_dir()]
    pick = sites[:k] + helm[:2]
    return sorted(dict.fromkeys(pick))


def object_sizes(git_dir):
    """Every object of a repository: id -> (type, size in bytes, size on disk)."""
    out = run(["git", f"--git-dir={git_dir}", "cat-file", "--batch-all-objects",
               "--batch-check=%(objectname) %(objecttype) %(objectsize) %(objectsize:disk)"],
              stdout=subprocess.PIPE).stdout
    objects = {}
    for line in out.splitlines():
        oid, kind, size, disk = line.split()
        objects[oid] = (kind, int(size), int(disk))
    return objects


def committed_objects(root, pristine):
    """What `commit` wrote: the objects the repository has beyond its
    pristine copy, their bytes (as git hashes them) and their size on disk
    (zlib-compressed loose objects), in all and per kind."""
    before = object_sizes(pristine)
    new = {k: v for k, v in object_sizes(root / ".git").items() if k not in before}
    res = {"objects": len(new), "bytes": sum(v[1] for v in new.values()),
           "disk": sum(v[2] for v in new.values())}
    for kind in ("blob", "tree", "commit"):
        res[f"{kind}_bytes"] = sum(v[1] for v in new.values() if v[0] == kind)
    return res


# ---------------------------------------------------------------------------
# One fleet size


def bench_n(n, a, results):
    work = a.work / f"n{n}"
    rmtree(work)
    work.mkdir(parents=True)
    root = work / "fleet"
    out = root / "out"
    r = results.setdefault(str(n), {})
    env = dict(os.environ, NO_COLOR="1")

    log(f"N = {n}: generating the fleet")
    run([HERE / "gen-fleet", n, root])
    dc = a.dify_cfg
    runs = a.runs

    r["check"] = measure("check", runs, None, [dc, "check", "--root", root], env=env)

    def fresh_out(_):
        rmtree(out)

    r["build"] = measure("build", runs, fresh_out, [dc, "build", "--root", root], env=env)
    r["noop"] = measure("no-op build", runs, None, [dc, "build", "--root", root], env=env)

    site_file = root / "sites" / f"{EDIT_SITE}.toml"
    original = site_file.read_text()

    def edit(i):
        text, k = re.subn(r'^description = "(.*)"$', rf'description = "\1 (edit {i + 1})"',
                          original, count=1, flags=re.M)
        assert k == 1, "no description line to edit"
        site_file.write_text(text)

    r["edit1"] = measure("one site edited", runs, edit, [dc, "build", "--root", root], env=env)
    site_file.write_text(original)
    run([dc, "build", "--root", root], env=env)
    # The out dir is now the build of HEAD's inputs: the trees both commit
    # benchmarks put on the branches.
    run([dc, "build", "--root", root, "--check"], env=env)

    pristine = work / "git-pristine"
    shutil.copytree(root / ".git", pristine, symlinks=True)

    def fresh_repo(_):
        restore_git(root, pristine)
        # The brief's reset, kept for a repository restored some other way.
        run(["sh", "-c", "git for-each-ref --format='delete %(refname)' refs/heads/sites/ "
             "| git update-ref --stdin"], cwd=root)

    r["commit"] = measure("commit", runs, fresh_repo, [dc, "commit", "--root", root], env=env)
    branches = run(["git", "for-each-ref", "--format=%(refname)", "refs/heads/sites/"],
                   cwd=root, stdout=subprocess.PIPE).stdout.split()
    if len(branches) != n:
        raise Failed(f"dify-cfg commit made {len(branches)} branches for {n} sites")
    dify_trees = {b: run(["git", "rev-parse", b + "^{tree}"], cwd=root, stdout=subprocess.PIPE).stdout.strip()
                  for b in branches[:3]}
    r["committed"] = committed_objects(root, pristine)
    log(f"  commit wrote {r['committed']['objects']:,} objects, "
        f"{r['committed']['bytes'] / 1024 / 1024:.1f} MiB ({r['committed']['disk'] / 1024 / 1024:.1f} MiB on disk)")
    r["audit"] = measure("audit", runs, None, [dc, "audit", "--root", root], env=env)

    r["gitcli"] = measure("git CLI commits", runs, fresh_repo, [HERE / "git-cli-commit", root], env=env)
    branches = run(["git", "for-each-ref", "--format=%(refname)", "refs/heads/sites/"],
                   cwd=root, stdout=subprocess.PIPE).stdout.split()
    if len(branches) != n:
        raise Failed(f"git-cli-commit made {len(branches)} branches for {n} sites")
    same_trees = all(
        run(["git", "rev-parse", b + "^{tree}"], cwd=root, stdout=subprocess.PIPE).stdout.strip() == t
        for b, t in dify_trees.items())
    r["gitcli_same_trees"] = same_trees

    copy = work / "floor-copy"

    def fresh_copy(_):
        rmtree(copy)

    floor = (f"cd {out} && mkdir {copy} && tar -cf - . | (cd {copy} && tar -xf -) "
             f"&& cd {copy} && find . -type f -print0 | xargs -0 sha256sum > /dev/null")
    r["floor"] = measure("copy + hash floor", runs, fresh_copy, ["sh", "-c", floor])
    r["files"] = int(run(["sh", "-c", f"find {out} -type f | wc -l"], stdout=subprocess.PIPE).stdout)
    r["bytes"] = int(run(["du", "-sb", out], stdout=subprocess.PIPE).stdout.split()[0])
    rmtree(copy)

    if a.kapitan_max is not None and n > a.kapitan_max:
        log(f"  Kapitan skipped at N = {n} (BENCH_KAPITAN_MAX={a.kapitan_max})")
        r["kapitan"] = None
    else:
        kroot = work / "kapitan"
        contexts = work / "contexts.jsonl"
        with open(contexts, "w") as f:
            subprocess.run([str(a.dump), str(root)], stdout=f, check=True)
        run([sys.executable, HERE / "kapitan" / "make-inventory.py", contexts, kroot, a.templates])
        contexts.unlink()
        kcmd = [a.kapitan, "compile", "--jinja2-filters", "lib/dify_filters.py"]
        if a.kapitan_args:
            kcmd += a.kapitan_args.split()

        def fresh_compiled(_):
            rmtree(kroot / "compiled")

        r["kapitan"] = measure("Kapitan compile", a.kapitan_runs, fresh_compiled, kcmd, cwd=kroot, env=env,
                               phases=kapitan_phases)
        for k in ("inventory", "compile"):
            vals = [s[k] for s in r["kapitan"]["samples"] if k in s]
            if vals:
                r["kapitan"][k] = statistics.median(vals)
        r["kapitan_compare"] = compare_outputs(out, kroot / "compiled", sample_sites(out))
        r["kapitan_files"] = int(run(["sh", "-c", f"find {kroot / 'compiled'} -type f | wc -l"],
                                     stdout=subprocess.PIPE).stdout)

    if not a.keep:
        rmtree(work)


# ---------------------------------------------------------------------------
# The report


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True).stdout.strip()
    except OSError as e:
        return f"({e})"


def machine(a):
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": sh("nproc"),
        "cpu": cpu,
        "memory": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "dify-cfg": sh(f"{a.dify_cfg} --version"),
        "kapitan": "kapitan " + sh(f"{a.kapitan} --version"),
        "git": sh("git --version"),
        "python": f"Python {platform.python_version()}",
        "load": sh("cat /proc/loadavg"),
        "workdir": f"{a.work} ({sh(f'stat -f -c %T {a.work}')})",
    }


def fmt_s(x):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:.0f} s"
    if x >= 1:
        return f"{x:.2f} s"
    return f"{x * 1000:.0f} ms" if x >= 0.01 else f"{x * 1000:.1f} ms"


def fmt_site(x):
    if x is None:
        return "–"
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 0.001:
        return f"{x * 1000:.2f} ms"
    return f"{x * 1e6:.0f} µs"


def fmt_mib(kib):
    return "–" if kib is None else f"{kib / 1024:.0f} MiB" if kib >= 10240 else f"{kib / 1024:.1f} MiB"


def ratio(x, y):
    if x is None or y is None or y == 0:
        return None
    return x / y


def fmt_x(x):
    return "–" if x is None else f"{x:.1f}×" if x < 100 else f"{x:.0f}×"


def kapitan_rate(results):
    """Seconds per site of Kapitan at the largest N it was run at."""
    done = [(int(n), r["kapitan"]["wall"]) for n, r in results.items() if r.get("kapitan")]
    if not done:
        return None, None
    n, t = max(done)
    return t / n, n


def kapitan_time(results, n):
    r = results[str(n)]
    if r.get("kapitan"):
        return r["kapitan"]["wall"], False
    rate, _ = kapitan_rate(results)
    return (rate * n if rate else None), True


# What is known about a target when it is missed: the structural reason,
# which a run's numbers alone do not tell.
MISSED_WHY = {
    "commit ≥ 10× faster than the git CLI (N = 1,000)": (
        "both write the same loose git objects, a zlib stream and a file for every blob, "
        "tree and commit, so that shared work bounds the ratio; `dify-cfg commit` also "
        "renders every site, which this peer is spared (it commits the trees `build` wrote), "
        "while the peer's own overhead is its process start-ups, a handful per site. The "
        "README's Performance section has the profile."
    ),
}


def report(a, results, mach):
    ns = sorted(int(n) for n in results)
    L = []
    w = L.append
    w("# dify-cfg benchmark results")
    w("")
    w(f"Written by `bench/run.sh {' '.join(map(str, ns))}` "
      f"(BENCH_RUNS={a.runs}, Kapitan runs {a.kapitan_runs}"
      + (f", BENCH_KAPITAN_MAX={a.kapitan_max}" if a.kapitan_max is not None else "")
      + "). How to read it: bench/README.md.")
    if a.runs < 5:
        w("")
        w(f"**This is a smoke run with {a.runs} run(s) per measurement, not the median of 5 "
          "the issue asks for: the figures show the harness works, not how fast anything is.**")
    w("")
    w("## Machine")
    w("")
    w("| | |")
    w("|---|---|")
    for k in ["date", "nproc", "cpu", "memory", "kernel", "dify-cfg", "kapitan", "git", "python", "load", "workdir"]:
        label = {"load": "load average at start", "workdir": "work directory", "nproc": "nproc",
                 "date": "date of the run"}.get(k, k)
        w(f"| {label} | `{mach[k]}` |")
    w("")
    w("Times are the median wall time of the runs; peak RSS is the median of "
      "`/usr/bin/time`'s `%M` (the largest single process, for Kapitan's worker pool too). "
      "Per site = median / N.")

    for n in ns:
        r = results[str(n)]
        w("")
        w(f"## N = {n:,} sites")
        w("")
        w(f"Rendered tree: {r['files']:,} files, {r['bytes'] / 1024 / 1024:.1f} MiB "
          "(all sites and `_images/`).")
        w("")
        w("| measurement | median | per site | min – max | peak RSS | runs |")
        w("|---|---:|---:|---:|---:|---:|")
        for key, label, _ in ROWS:
            m = r.get(key)
            if m is None:
                if key == "kapitan":
                    est, _ = kapitan_time(results, n)
                    rate, at = kapitan_rate(results)
                    note = (f"skipped (BENCH_KAPITAN_MAX={a.kapitan_max}); estimate "
                            f"{fmt_s(est)} at the per-site rate of N = {at:,}" if est else
                            f"skipped (BENCH_KAPITAN_MAX={a.kapitan_max})")
                    w(f"| {label} | {note} | {fmt_site(rate)} | | | 0 |")
                continue
            w(f"| {label} | {fmt_s(m['wall'])} | {fmt_site(m['wall'] / n)} | "
              f"{fmt_s(m['wall_min'])} – {fmt_s(m['wall_max'])} | {fmt_mib(m['rss_kib'])} | {m['runs']} |")
        build = r["build"]["wall"]
        kt, est = kapitan_time(results, n)
        w("")
        w("| ratio | value |")
        w("|---|---:|")
        w(f"| Kapitan / dify-cfg build, per site{' (Kapitan estimated)' if est else ''} "
          f"| {fmt_x(ratio(kt, build))} |")
        w(f"| dify-cfg build / copy + hash floor | {fmt_x(ratio(build, r['floor']['wall']))} |")
        w(f"| git CLI / dify-cfg commit | {fmt_x(ratio(r['gitcli']['wall'], r['commit']['wall']))} |")
        w(f"| no-op build / full build | {fmt_x(ratio(r['noop']['wall'], build))} |")
        w(f"| one site edited / full build | {fmt_x(ratio(r['edit1']['wall'], build))} |")
        c = r.get("committed")
        if c:
            w("")
            w(f"Committed by `dify-cfg commit`: {c['objects']:,} new objects, "
              f"{c['bytes'] / 1024 / 1024:.1f} MiB as git hashes them (blobs "
              f"{c['blob_bytes'] / 1024 / 1024:.1f} MiB, trees {c['tree_bytes'] / 1024 / 1024:.1f} MiB, "
              f"commits {c['commit_bytes'] / 1024 / 1024:.1f} MiB), "
              f"{c['disk'] / 1024 / 1024:.1f} MiB on disk.")
        if not r.get("gitcli_same_trees", True):
            w("")
            w("Note: the git CLI commits' trees differ from dify-cfg's (file modes?).")
        km = r.get("kapitan")
        if km and "inventory" in km:
            w("")
            w(f"Kapitan's own account (median): rendering the inventory {fmt_s(km['inventory'])}, "
              f"compiling the targets {fmt_s(km.get('compile'))}; the rest of its wall time is "
              "start-up (imports) and writing.")
        cmp = r.get("kapitan_compare")
        if cmp:
            w("")
            total = cmp["identical"] + cmp["newline_only"] + len(cmp["differ"]) + len(cmp["missing"])
            w(f"Kapitan's output against dify-cfg's, for {len(cmp['sites'])} sites "
              f"({', '.join(cmp['sites'])}): {total} files compared, {cmp['identical']} identical, "
              f"{cmp['newline_only']} identical but for the final newline, {len(cmp['differ'])} different, "
              f"{len(cmp['missing'])} missing; `manifest.json` is dify-cfg's only "
              f"({r.get('kapitan_files', 0):,} files compiled by Kapitan in all).")
            for d in cmp["differ"][:3]:
                w("")
                w(f"<details><summary>{d['file']}</summary>")
                w("")
                w("```diff")
                w(d["diff"].rstrip())
                w("```")
                w("</details>")

    # Scaling
    w("")
    w("## Scaling")
    w("")
    pairs = [(x, y) for x, y in zip(ns, ns[1:])]
    if pairs:
        w("| measurement | " + " | ".join(f"{y:,} / {x:,} sites" for x, y in pairs) + " |")
        w("|---|" + "---:|" * len(pairs))
        for key, label, _ in ROWS:
            cells = []
            for x, y in pairs:
                mx, my = results[str(x)].get(key), results[str(y)].get(key)
                cells.append(fmt_x(ratio(my and my["wall"], mx and mx["wall"])))
            w(f"| {label} | " + " | ".join(cells) + " |")
        w("")
        w("A ratio equal to the ratio of the sizes is linear scaling.")
    else:
        w("One fleet size only: no scaling figures.")

    # Targets
    w("")
    w("## Targets of issue 6")
    w("")
    w("| target | measured | verdict |")
    w("|---|---|---|")

    def get(n, key):
        r = results.get(str(n))
        return r and r.get(key)

    def verdict(ok, by=None):
        if ok is None:
            return "not measured"
        return "met" if ok else f"**missed**{(' by ' + by) if by else ''}"

    missed = []

    def target(label, n, value, ok, by=None):
        if value is None:
            w(f"| {label} | N = {n:,} not in this run | not measured |")
        else:
            w(f"| {label} | {value} | {verdict(ok, by)} |")
            if ok is False:
                missed.append(label)

    b1k = get(1000, "build")
    t = b1k and b1k["wall"]
    target("1,000 sites built in under 1 s", 1000, t and fmt_s(t), t and t < 1.0,
           t and f"{t / 1.0:.1f}×")
    # Kapitan: at 1,000 if there, else the largest N measured.
    kn = 1000 if str(1000) in results else (max(ns) if ns else None)
    if kn is not None:
        kt, est = kapitan_time(results, kn)
        x = ratio(kt, results[str(kn)]["build"]["wall"])
        target(f"≥ 20× faster per site than Kapitan (N = {kn:,}{', Kapitan estimated' if est else ''})",
               kn, x and fmt_x(x), x and x >= 20, x and f"{20 / x:.1f}×")
    fn = 1000 if str(1000) in results else (max(ns) if ns else None)
    if fn is not None:
        x = ratio(results[str(fn)]["build"]["wall"], results[str(fn)]["floor"]["wall"])
        target(f"within 5× of the copy-and-hash floor (N = {fn:,})", fn, x and fmt_x(x), x and x <= 5,
               x and f"{x / 5:.1f}×")
    m = get(1000, "noop")
    t = m and m["wall"]
    target("no-op rebuild of 1,000 sites under 150 ms", 1000, t and fmt_s(t), t and t < 0.150,
           t and f"{t / 0.150:.1f}×")
    m = get(1000, "commit")
    t = m and m["wall"]
    target("commit of 1,000 branches under 3 s", 1000, t and fmt_s(t), t and t < 3.0, t and f"{t / 3.0:.1f}×")
    g = get(1000, "gitcli")
    x = ratio(g and g["wall"], t)
    target("commit ≥ 10× faster than the git CLI (N = 1,000)", 1000, x and fmt_x(x), x and x >= 10,
           x and f"{10 / x:.1f}×")
    if get(10000, "build"):
        peaks = {k: get(10000, k)["rss_kib_max"] for k in ("build", "noop", "edit1", "commit", "audit")}
        worst = max(peaks.values())
        detail = ", ".join(f"{k} {fmt_mib(v)}" for k, v in peaks.items())
        target("peak RSS under 200 MB at 10,000 sites", 10000, detail, worst < 200e6 / 1024,
               f"{worst * 1024 / 200e6:.1f}×")
    else:
        target("peak RSS under 200 MB at 10,000 sites", 10000, None, None)
    b10 = get(10000, "build")
    x = ratio(b10 and b10["wall"], b1k and b1k["wall"])
    target("10,000 sites take at most 11× as long as 1,000", 10000, x and fmt_x(x), x and x <= 11,
           x and f"{x / 11:.1f}×")
    w("")
    w("Where a target is missed, \"by\" is the factor between the measurement and the target.")
    for label in missed:
        if label in MISSED_WHY:
            w("")
            w(f"Why \"{label}\" is missed: {MISSED_WHY[label]}")
    w("")
    w("## What each measurement does")
    w("")
    for key, label, what in ROWS:
        w(f"- **{label}**: {what}.")
    w("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ns", nargs="*", type=int)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kapitan-runs", type=int)
    ap.add_argument("--kapitan-max", type=int)
    ap.add_argument("--kapitan-args", default="")
    ap.add_argument("--work", type=Path)
    ap.add_argument("--dify-cfg", type=Path)
    ap.add_argument("--dump", type=Path)
    ap.add_argument("--kapitan", type=Path)
    ap.add_argument("--templates", type=Path)
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--raw", type=Path)
    ap.add_argument("--keep", action="store_true")
    # Write the report again from a run's raw results (its numbers as they
    # were measured), e.g. after the report's wording changed.
    ap.add_argument("--report-from", type=Path)
    a = ap.parse_args()
    if a.kapitan_runs is None:
        a.kapitan_runs = a.runs
    if a.report_from:
        raw = json.loads(a.report_from.read_text())
        for k, v in raw.get("settings", {}).items():
            setattr(a, k, v)
        a.results.write_text(report(a, raw["results"], raw["machine"]))
        log(f"wrote {a.results} from {a.report_from}")
        return 0
    needed = ["work", "dify_cfg", "dump", "kapitan", "templates"]
    if not a.ns or any(getattr(a, k) is None for k in needed):
        ap.error("a run needs fleet sizes and --" + " --".join(k.replace("_", "-") for k in needed))
    a.work.mkdir(parents=True, exist_ok=True)
    mach = machine(a)
    results = {}
    try:
        for n in a.ns:
            bench_n(n, a, results)
            # A report after every N, so a long run leaves something behind.
            a.results.write_text(report(a, results, mach))
            if a.raw:
                settings = {"runs": a.runs, "kapitan_runs": a.kapitan_runs, "kapitan_max": a.kapitan_max}
                a.raw.write_text(json.dumps({"machine": mach, "settings": settings, "results": results},
                                            indent=1) + "\n")
    except Failed as e:
        log(f"failed: {e}")
        return 1
    log(f"wrote {a.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
