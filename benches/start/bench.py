#!/usr/bin/env python3
"""Start-latency benchmark: envc against crun, runc, bubblewrap and unshare.

Called by scripts/bench-start.sh (which installs the tools and builds
everything); see docs/performance.md. Run as root.

All runtimes are timed in ONE interleaved run: every round starts each runtime
once, in a shuffled order, so load from the rest of the machine hits them all
alike and the paired ratios hold on a noisy machine. Each start is timed by
the `spawn` launcher (benches/start/spawn.c), not by Python: wall time from
spawn to reap, the peak RSS of the largest process of the tree and the CPU
time (user + system) of the whole tree (both from wait4).
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NAMESPACES = ("mnt", "pid", "net", "uts", "ipc")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "mqueue")
# Printed inside every container by the listing run (busybox sh and ls).
LISTING = (
    'for n in mnt pid net uts ipc cgroup; do echo "ns $n $(readlink /proc/self/ns/$n)"; done; '
    'for d in /dev/* /dev/pts/*; do echo "dev $d"; done; '
    "while read -r _ _ _ _ mp _ _ _ fs _; do echo \"mount $mp $fs\"; done < /proc/self/mountinfo; "
    'while read -r l; do echo "cgroup $l"; done < /proc/self/cgroup'
)


def log(msg=""):
    print(msg, flush=True)


def busy_ms():
    """CPU time the whole machine has spent busy, in ms (/proc/stat: user,
    nice, system, irq and softirq; idle, iowait and steal left out)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) * 1000 / os.sysconf("SC_CLK_TCK")


class Runtime:
    def __init__(self, name, argv, note="", private_unified=False, par_argv=None, list_argv=None):
        self.name = name
        self.argv = argv  # "@ID@" -> a fresh container ID per invocation
        self.par_argv = par_argv or argv
        self.list_argv = list_argv
        self.note = note
        self.private_unified = private_unified
        self.single = []  # (ms, rss KiB)
        self.cpu = []  # CPU ms (user + system) of each single start
        self.seq = []  # total ms
        self.par = []  # total ms
        self.par_rss = []
        self.par_busy = []  # CPU ms a start of the whole machine, kernel threads included
        self.failures = 0


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = os.path.abspath(a.work)
        self.rootfs = os.path.join(self.work, "rootfs")
        self.counter = 0
        self.tag = f"eb{os.getpid()}"  # prefix of every crun/runc container ID
        self.host_ns = {n: os.readlink(f"/proc/self/ns/{n}") for n in NAMESPACES + ("cgroup",)}

    def path(self, *p):
        return os.path.join(self.work, *p)

    # ---------------------------------------------------------------- setup
    def prepare(self):
        a = self.a
        for d in ("oci-true", "oci-list", "envc", "envc-log", "crun-state", "runc-state"):
            os.makedirs(self.path(d), exist_ok=True)
        tmpl = open(os.path.join(HERE, "config.json")).read().replace("@ROOTFS@", self.rootfs)
        cfg = json.loads(tmpl)
        with open(self.path("oci-true", "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        cfg["process"]["args"] = ["/bin/sh", "-c", LISTING]
        with open(self.path("oci-list", "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)

        def profile(fname, name, command, config=""):
            with open(self.path("envc", fname), "w") as f:
                f.write(f'name = "{name}"\nrootfs = "../rootfs"\n{config}\n[init]\ncommand = {json.dumps(command)}\n')

        # The default (full) profile: builtin:lxd under a name, a rootfs and an init.
        profile("bench.toml", "bench", ["/bin/true"])
        for i in range(a.par):
            profile(f"bench-{i}.toml", f"bench-{i}", ["/bin/true"])
        profile("list.toml", "bench-list", ["/bin/sh", "-c", LISTING])
        priv = '[config]\n"security.privileged" = true\n'
        profile("bench-p.toml", "bench-p", ["/bin/true"], priv)
        for i in range(a.par):
            profile(f"bench-p-{i}.toml", f"bench-p-{i}", ["/bin/true"], priv)
        profile("list-p.toml", "bench-list-p", ["/bin/sh", "-c", LISTING], priv)
        nofilter = '[config]\n"security.syscalls.deny_default" = false\n'
        profile("bench-nf.toml", "bench-nf", ["/bin/true"], nofilter)
        for i in range(a.par):
            profile(f"bench-nf-{i}.toml", f"bench-nf-{i}", ["/bin/true"], nofilter)
        profile("list-nf.toml", "bench-list-nf", ["/bin/sh", "-c", LISTING], nofilter)

        for n in a.plan_devices:
            with open(self.path(f"plan-{n}.toml"), "w") as f:
                f.write('name = "plan"\nrootfs = "rootfs"\n')
                for i in range(n):
                    f.write(
                        f'\n[devices.d{i}]\ntype = "disk"\nsource = "/srv/data/{i}"\n'
                        f'path = "/mnt/g{i % 97}/d{i}"\nreadonly = {"true" if i % 2 == 0 else "false"}\n'
                    )

        os.environ["ENVC_LOG_DIR"] = self.path("envc-log")  # keep /var/log/envc free of bench-*
        crun_state, runc_state = self.path("crun-state"), self.path("runc-state")
        oci = self.path("oci-true")
        rts = [
            Runtime(
                "envc",
                [a.envc, "apply", self.path("envc", "bench.toml")],
                par_argv=[a.envc, "apply", self.path("envc", "bench-@I@.toml")],
                list_argv=[a.envc, "apply", "--report", self.path("list-report.json"), self.path("envc", "list.toml")],
                note="default profile (builtin:lxd, unprivileged): LXD /dev, console, proc/sys, cgroups, guest API, report",
            ),
            Runtime(
                "crun",
                [a.crun, "--root", crun_state, "run", "-b", oci, "@ID@"],
                list_argv=[a.crun, "--root", crun_state, "run", "-b", self.path("oci-list"), "@ID@"],
            ),
            Runtime(
                "runc",
                [a.runc, "--root", runc_state, "run", "-b", oci, "@ID@"],
                list_argv=[a.runc, "--root", runc_state, "run", "-b", self.path("oci-list"), "@ID@"],
            ),
            Runtime(
                "bwrap",
                [a.bwrap, "--unshare-all", "--bind", self.rootfs, "/", "--dev", "/dev", "--proc", "/proc",
                 "--ro-bind", "/sys", "/sys", "--mqueue", "/dev/mqueue", "/bin/true"],
                note="no cgroups, console or guest API; --unshare-all adds user+cgroup ns",
            ),
            Runtime(
                "unshare",
                [a.unshare, "--mount", "--pid", "--fork", "--net", "--uts", "--ipc", "/bin/true"],
                note="floor: namespaces only, host /bin/true, no mounts",
            ),
        ]
        rts[3].list_argv = rts[3].argv[:-1] + ["/bin/sh", "-c", LISTING]
        rts[4].list_argv = rts[4].argv[:-1] + ["/bin/sh", "-c", LISTING]
        # The same start privileged: no user namespace, no id map, the
        # rootfs bound as it is.
        rts.insert(1, Runtime(
            "envc-priv",
            [a.envc, "apply", self.path("envc", "bench-p.toml")],
            par_argv=[a.envc, "apply", self.path("envc", "bench-p-@I@.toml")],
            list_argv=[a.envc, "apply", "--report", self.path("list-report.json"), self.path("envc", "list-p.toml")],
            note='the same profile with "security.privileged" = true',
        ))
        # The default start without the syscall filter: what loading it costs.
        rts.insert(2, Runtime(
            "envc-nofilter",
            [a.envc, "apply", self.path("envc", "bench-nf.toml")],
            par_argv=[a.envc, "apply", self.path("envc", "bench-nf-@I@.toml")],
            list_argv=[a.envc, "apply", "--report", self.path("list-report.json"), self.path("envc", "list-nf.toml")],
            note='the default profile with "security.syscalls.deny_default" = false (no syscall filter)',
        ))
        if a.envc_before:
            # Another build of envc (say, main before a change), timed in the
            # same interleaved rounds as this one.
            rts.insert(1, Runtime(
                "envc-before",
                [a.envc_before] + rts[0].argv[1:],
                par_argv=[a.envc_before] + rts[0].par_argv[1:],
                list_argv=[a.envc_before] + rts[0].list_argv[1:],
                note=f"{a.envc_before}, the same profiles",
            ))
        self.runtimes = [r for r in rts if r.name in a.only] if a.only else rts

    def fresh(self, argv, rt):
        """A copy of argv with "@ID@" replaced by a container ID never used before."""
        self.counter += 1
        cid = f"{self.tag}-{rt.name}-{self.counter}"
        return [x.replace("@ID@", cid) for x in argv]

    def spawn(self, rt, mode, n, argv):
        cmd = [self.a.spawn] + (["-p"] if rt.private_unified else []) + [mode, str(n)] + argv
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if mode == "run":
            return out
        if out.returncode != 0:
            sys.exit(f"spawn failed: {out.stderr.strip()}")
        ns, rss, failed, cpu_us = out.stdout.split()
        return int(ns) / 1e6, int(rss), int(failed), int(cpu_us) / 1e3

    # ---------------------------------------------------------------- verify
    def listing(self, rt):
        argv = self.fresh(rt.list_argv, rt)
        r = self.spawn(rt, "run", 1, argv)
        if r.returncode != 0 and rt.name in ("crun", "runc") and os.path.ismount("/sys/fs/cgroup/unified"):
            first = (r.stdout + r.stderr).strip().splitlines()[-1:] or [""]
            rt.private_unified = True
            rt.note = (f"run in a private mount namespace without /sys/fs/cgroup/unified "
                       f"(on the host it said: {first[0][:90]!r}); the host's mounts are untouched")
            argv = self.fresh(rt.list_argv, rt)
            r = self.spawn(rt, "run", 1, argv)
        return r, argv

    def verify(self):
        log("== listing run per runtime (checks each did its work)")
        ok_all = True
        for rt in self.runtimes:
            r, argv = self.listing(rt)
            lines = r.stdout.splitlines()
            problems = []
            if r.returncode != 0:
                problems.append(f"exit status {r.returncode}: {r.stderr.strip()[-200:]}")
            ns = dict(l.split()[1:3] for l in lines if l.startswith("ns ") and len(l.split()) == 3)
            for n in NAMESPACES:
                if n not in ns or ns[n] == self.host_ns[n]:
                    problems.append(f"no new {n} namespace")
            devs = {l.split()[1] for l in lines if l.startswith("dev ")}
            mounts = {tuple(l.split()[1:3]) for l in lines if l.startswith("mount ") and len(l.split()) == 3}
            if rt.name != "unshare":
                for d in DEVICES:
                    if f"/dev/{d}" not in devs:
                        problems.append(f"/dev/{d} missing")
                for mp, fs in (("/proc", "proc"), ("/sys", "sysfs"), ("/dev", "tmpfs"),
                               ("/dev/pts", "devpts"), ("/dev/mqueue", "mqueue")):
                    if (mp, fs) not in mounts:
                        problems.append(f"{mp} ({fs}) not mounted")
            cgroups = [l[7:] for l in lines if l.startswith("cgroup ")]
            own = 0
            if rt.name in ("crun", "runc"):
                cid = argv[-1]
                v1 = [c for c in cgroups if not c.startswith("0::")]
                if not v1 or not all(c.endswith("/" + cid) for c in v1):
                    problems.append("not in its own cgroup in every v1 hierarchy")
                own = len([c for c in cgroups if c.endswith("/" + cid)])
                rt.note += ("; " if rt.note else "") + f"cgroups in {own} hierarchies"
            if rt.name.startswith("envc"):
                if "/dev/console" not in devs or "/dev/lxd" not in devs:
                    problems.append("/dev/console or /dev/lxd missing")
                if ns.get("cgroup") == self.host_ns["cgroup"]:
                    problems.append("no cgroup namespace")
                # In its own cgroup namespace, every hierarchy shows the root.
                if len(cgroups) < 2 or not all(c.endswith(":/") for c in cgroups):
                    problems.append(f"not at the root of its cgroup namespace: {cgroups}")
                own = len(cgroups)
                try:
                    rep = json.load(open(self.path("list-report.json")))
                    steps = rep["steps"]
                    bad = [s for s in steps if s["status"] not in ("done", "skipped")]
                    if bad:
                        problems.append(f"{len(bad)} steps not done, first: {bad[0]['op']}")
                    for op in ("CreateCgroup", "AttachCgroup"):
                        if not any(s["op"] == op and s["status"] == "done" for s in steps):
                            problems.append(f"report: {op} not done")
                    att = next((s.get("detail", "") for s in steps if s["op"] == "AttachCgroup"), "")
                    rt.note += f"; cgroup in {own} hierarchies ({att})" if att else ""
                except (OSError, ValueError, KeyError) as e:
                    problems.append(f"report: {e}")
            ndev = len([d for d in devs if d.count("/") == 2])
            if problems:
                ok_all = False
                log(f"  {rt.name:8} FAILED: " + "; ".join(problems))
            else:
                log(f"  {rt.name:8} ok: new {'/'.join(NAMESPACES)} ns"
                    + (f", /dev has {ndev} entries incl. {' '.join(DEVICES)}, proc/sys/devpts/mqueue mounted"
                       if rt.name != "unshare" else "")
                    + (f", own cgroup in {own} hierarchies" if rt.name in ("crun", "runc") else "")
                    + (", report: cgroups created+attached, no step failed" if rt.name.startswith("envc") else ""))
        if not ok_all and not self.a.keep_going:
            sys.exit("a runtime did not do its work; not timing it (--keep-going to time anyway)")

    # ---------------------------------------------------------------- timing
    def interleaved(self, rounds, fn):
        rng = random.Random(self.a.seed)
        for i in range(rounds):
            order = list(self.runtimes)
            rng.shuffle(order)
            for rt in order:
                fn(rt, i)

    def run_single(self):
        a = self.a
        log(f"== single starts: {a.warmup} warm-up + {a.rounds} rounds, interleaved (shuffled order each round)")

        def one(rt, i):
            ms, rss, failed, cpu = self.spawn(rt, "one", 1, self.fresh(rt.argv, rt))
            rt.failures += failed
            if i >= a.warmup:
                rt.single.append((ms, rss))
                rt.cpu.append(cpu)

        self.interleaved(a.warmup + a.rounds, one)

    def run_seq_par(self):
        a = self.a
        log(f"== {a.seq} sequential starts x {a.reps} reps, {a.par} concurrent starts x {a.reps} reps, interleaved")

        def seq(rt, i):
            argv = [x.replace("@ID@", f"{self.tag}-{rt.name}-s{i}-@I@") for x in rt.argv]
            ms, _, failed, _ = self.spawn(rt, "seq", a.seq, argv)
            rt.failures += failed
            rt.seq.append(ms)

        def par(rt, i):
            argv = [x.replace("@ID@", f"{self.tag}-{rt.name}-p{i}-@I@") for x in rt.par_argv]
            before = busy_ms()
            ms, rss, failed, _ = self.spawn(rt, "par", a.par, argv)
            # The kernel's work left after the last exit (freeing network
            # namespaces, offlining cgroups, RCU callbacks) is the start's
            # too: counted until it has settled.
            time.sleep(a.settle)
            rt.par_busy.append((busy_ms() - before) / a.par)
            rt.failures += failed
            rt.par.append(ms)
            rt.par_rss.append(rss)

        self.interleaved(a.reps, seq)
        self.interleaved(a.reps, par)

    def run_breakdown(self):
        """envc's own view: per-step times and milestones from --report (when this envc records them)."""
        env = next((r for r in self.runtimes if r.name == "envc"), None)
        if not env or self.a.breakdown <= 0:
            return None
        rep = self.path("breakdown-report.json")
        steps_us, cg_us, miles = [], [], {}
        for _ in range(self.a.breakdown):
            if os.path.exists(rep):
                os.unlink(rep)
            argv = env.argv[:2] + ["--report", rep] + env.argv[2:]
            self.spawn(env, "one", 1, argv)
            try:
                r = json.load(open(rep))
            except (OSError, ValueError):
                return None
            if not any("us" in s for s in r.get("steps", [])):
                return None
            steps_us.append(sum(s.get("us", 0) for s in r["steps"]))
            cg_us.append(sum(s.get("us", 0) for s in r["steps"] if "cgroup" in s["op"].lower()))
            for m in r.get("milestones", []):
                miles.setdefault(m["what"], []).append(m["us"])
        return statistics.median(steps_us) / 1e3, statistics.median(cg_us) / 1e3, {
            k: statistics.median(v) / 1e3 for k, v in miles.items()}

    def run_plan(self):
        """`envc plan` of profiles of each size in --plan-devices: the whole
        command's median ms, and per device. The cost of a device must stay
        flat as profiles grow."""
        a = self.a
        log(f"== envc plan of {', '.join(map(str, a.plan_devices))} devices")
        out = []
        for n in a.plan_devices:
            prof = self.path(f"plan-{n}.toml")
            if subprocess.run([a.envc, "plan", prof], stdout=subprocess.DEVNULL).returncode != 0:
                return None
            runs = max(3, min(20, 200000 // n))
            t = [self.spawn(Runtime("plan", []), "one", 1, [a.envc, "plan", prof])[0] for _ in range(runs)]
            out.append((n, statistics.median(t), runs))
        return out

    # ---------------------------------------------------------------- report
    def report(self, plan, breakdown):
        a = self.a
        env = next((r for r in self.runtimes if r.name == "envc"), None)

        def med(v):
            return statistics.median(v) if v else float("nan")

        def ratio(e, x):
            return f"{e / x:.2f}" if env and x == x and x > 0 else "-"

        e1 = med([m for m, _ in env.single]) if env else None
        es = med(env.seq) if env else None
        ep = med(env.par) if env else None
        L = []
        L.append(f"envc start benchmark: {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
                 f"load average {os.getloadavg()[0]:.2f} at the end, kernel {os.uname().release}")
        L.append(f"single starts: {a.rounds} interleaved rounds ({a.warmup} warm-up dropped); "
                 f"ratio = envc median / runtime median (targets: vs crun <= 0.50, vs bwrap <= 1.25)")
        L.append("")
        L.append("| runtime | median ms | min–max ms | envc ÷ runtime | peak RSS MiB (median, max) "
                 "| CPU ms (median) |")
        L.append("|---|---:|---:|---:|---:|---:|")
        for rt in self.runtimes:
            ms = [m for m, _ in rt.single]
            rss = [r / 1024 for _, r in rt.single]
            L.append(f"| {rt.name} | {med(ms):.2f} | {min(ms):.2f}–{max(ms):.2f} | {ratio(e1, med(ms))} | "
                     f"{med(rss):.2f}, {max(rss):.2f} | {med(rt.cpu):.2f} |")
        L.append("")
        L.append(f"| runtime | {a.seq} sequential, total ms | envc ÷ runtime | {a.par} concurrent, total ms "
                 f"| envc ÷ runtime | peak RSS MiB ({a.par} concurrent) | machine CPU ms a start ({a.par} concurrent) |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for rt in self.runtimes:
            L.append(f"| {rt.name} | {med(rt.seq):.0f} | {ratio(es, med(rt.seq))} | {med(rt.par):.0f} | "
                     f"{ratio(ep, med(rt.par))} | {max(rt.par_rss) / 1024:.2f} | {med(rt.par_busy):.1f} |")
        L.append(f"(medians of {a.reps} interleaved reps each; wall time from the first spawn to the last reap; "
                 f"machine CPU: /proc/stat's busy time over the {a.par} starts and {a.settle:g} s after them, "
                 f"kernel threads included, divided by {a.par}: on {os.cpu_count()} CPUs the concurrent starts "
                 f"are bound by it)")
        L.append("")
        if plan:
            L.append("| envc plan of | median ms | µs per device |")
            L.append("|---|---:|---:|")
            for n, ms, runs in plan:
                L.append(f"| {n} devices ({runs} runs) | {ms:.1f} | {ms * 1e3 / n:.1f} |")
            per = [ms / n for n, ms, _ in plan]
            L.append(f"(growth: the most per device is {max(per) / min(per):.2f}x the least)")
        else:
            L.append("envc plan of the device profiles FAILED")
        if breakdown:
            total, cg, miles = breakdown
            L.append(f"envc's own timing ({a.breakdown} extra runs with --report, medians): plan steps {total:.2f} ms,"
                     f" of which cgroup steps (ops named *Cgroup*) {cg:.2f} ms")
            if miles:
                L.append("  milestones (ms since envc started): "
                         + ", ".join(f"{k} {v:.2f}" for k, v in sorted(miles.items(), key=lambda kv: kv[1])))
        elif a.breakdown > 0:
            L.append("envc's own timing: this envc's report has no per-step times (see `envc apply --timings`)")
        L.append("")
        L.append("what each runtime did:")
        for rt in self.runtimes:
            L.append(f"  {rt.name:8} {' '.join(x.replace(self.work, '$W') for x in rt.argv)}")
            if rt.note:
                L.append(f"  {'':8} {rt.note}")
        L.append(f"  ($W = {self.work}; @ID@ = a fresh container ID per start; crun/runc state in $W/*-state,"
                 f" removed by `run` itself when the container exits)")
        bad = [rt for rt in self.runtimes if rt.failures]
        for rt in bad:
            L.append(f"WARNING: {rt.name}: {rt.failures} timed starts failed (non-zero exit)")
        if env:
            crun = next((r for r in self.runtimes if r.name == "crun"), None)
            bwrap = next((r for r in self.runtimes if r.name == "bwrap"), None)
            L.append("")
            L.append("targets (docs/performance.md):")

            def chk(label, val, lim, le=True):
                ok = val <= lim if le else val < lim
                L.append(f"  {label:38} {val:7.2f}  {'<=' if le else '<'} {lim:<5} {'met' if ok else 'NOT met'}")

            if crun:
                chk("envc/crun single (medians)", e1 / med([m for m, _ in crun.single]), 0.5)
                chk(f"envc/crun {a.seq} sequential", es / med(crun.seq), 0.5)
                chk(f"envc/crun {a.par} concurrent", ep / med(crun.par), 0.5)
            if bwrap:
                chk("envc/bwrap single (medians)", e1 / med([m for m, _ in bwrap.single]), 1.25)
            privileged = next((r for r in self.runtimes if r.name == "envc-priv"), None)
            if privileged:
                p1 = med([m for m, _ in privileged.single])
                chk("envc unprivileged/privileged single", e1 / p1, 1.3)
                if crun:
                    chk("envc unprivileged/crun single", e1 / med([m for m, _ in crun.single]), 0.6)
            nofilter = next((r for r in self.runtimes if r.name == "envc-nofilter"), None)
            if nofilter:
                L.append(f"  {'syscall filter: envc - envc-nofilter':38} "
                         f"{e1 - med([m for m, _ in nofilter.single]):7.2f}  ms a single start (medians)")
            chk("envc peak RSS MiB (max of runs)", max(r for _, r in env.single) / 1024, 2.5)
            if plan:
                per = [ms / n for n, ms, _ in plan]
                chk("envc plan: most ÷ least time per device", max(per) / min(per), 1.5)
        text = "\n".join(L)
        log("")
        log(text)
        with open(self.path("results.md"), "w") as f:
            f.write(text + "\n")
        log(f"\n(also written to {self.path('results.md')})")

    # ---------------------------------------------------------------- clean
    def check_clean(self):
        left = []
        for d in ("crun-state", "runc-state"):
            if os.listdir(self.path(d)):
                left.append(f"{d}: {os.listdir(self.path(d))[:5]}")
        for base in ("/run/envc", "/run/crun", "/run/runc"):
            if os.path.isdir(base):
                left += [f"{base}/{x}" for x in os.listdir(base) if x.startswith(("bench", self.tag))]
        for root, dirs, _ in os.walk("/sys/fs/cgroup"):
            for d in dirs:
                if d.startswith(self.tag) or (d.startswith("bench") and os.path.basename(root) == "envc"):
                    left.append(os.path.join(root, d))
        with open("/proc/self/mountinfo") as f:
            left += [l.split()[4] for l in f if self.work in l.split()[4]]
        if left:
            log("host NOT clean, left behind: " + ", ".join(left[:20]))
            return False
        log("host clean: no container state, cgroups or mounts left behind")
        return True


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="work directory (holds rootfs/)")
    for t in ("envc", "spawn", "crun", "runc", "bwrap", "unshare", "hyperfine"):
        p.add_argument(f"--{t}", default=shutil.which(t))
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seq", type=int, default=50)
    p.add_argument("--par", type=int, default=20)
    p.add_argument("--settle", type=float, default=0.5,
                   help="seconds after the concurrent starts whose CPU is still theirs (default 0.5)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--plan-devices", type=int, nargs="+", default=[1000, 10000, 100000],
                   help="sizes of the device profiles `envc plan` is timed on")
    p.add_argument("--envc-before", help="another envc binary to time side by side with --envc")
    p.add_argument("--seed", type=int, default=8)
    p.add_argument("--breakdown", type=int, default=10, help="extra envc runs with --report for its own timing")
    p.add_argument("--only", nargs="*", help="a subset of envc envc-priv envc-nofilter envc-before crun runc bwrap unshare")
    p.add_argument("--keep-going", action="store_true", help="time a runtime even if its listing run failed")
    a = p.parse_args()
    for t in ("envc", "spawn", "crun", "runc", "bwrap", "unshare"):
        if not getattr(a, t):
            sys.exit(f"{t} not found")
    b = Bench(a)
    b.prepare()
    b.verify()
    b.run_single()
    b.run_seq_par()
    breakdown = b.run_breakdown()
    plan = b.run_plan()
    b.report(plan, breakdown)
    sys.exit(0 if b.check_clean() else 1)


if __name__ == "__main__":
    main()
