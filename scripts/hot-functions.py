#!/usr/bin/env python3
"""Lists the functions of envc that a container start runs, in the order
they first run: the input of the linker's symbol ordering (see
docs/performance.md, "Code layout").

    sudo scripts/hot-functions.py [--map LINK_MAP] BINARY -- ARGS...  (a command per --)
    scripts/hot-functions.py --check ORDER_FILE --map LINK_MAP
    (scripts/hot-functions.sh does it all: build, trace, write, build again)

BINARY is the release build of envc, and LINK_MAP the map its link wrote
(build.rs asks LLD for one: target/<triple>/release/build/envc-*/out/envc.map);
without --map, BINARY's own symbol table is read (an unstripped build: but
the names must be those of the build the list is for, and a change of
profile settings changes their hashes). Each command runs under
ptrace with a one-shot breakpoint on the first byte of every function in
BINARY's symbol table; a breakpoint that fires is recorded and removed. The
container's process (envc's clone) is followed until it execs PID 1, and
envc's threads too. Prints the mangled names, first run first, to stdout
(the commands' own output goes to stderr).

Exact, unlike sampling: a function run once for a few nanoseconds is listed
too, and each one missed would cost the start a fault (and up to 64 KiB of
resident text) in the cold part of the binary.
"""

import ctypes
import ctypes.util
import os
import re
import signal
import subprocess
import sys

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

PTRACE_TRACEME = 0
PTRACE_PEEKTEXT = 1
PTRACE_POKETEXT = 4
PTRACE_CONT = 7
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_DETACH = 17
PTRACE_SETOPTIONS = 0x4200
O_TRACEFORK = 0x02
O_TRACEVFORK = 0x04
O_TRACECLONE = 0x08
O_TRACEEXEC = 0x10
O_EXITKILL = 0x100000
EV_FORK, EV_VFORK, EV_CLONE, EV_EXEC = 1, 2, 3, 4
WALL = 0x40000000


class Regs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax "
        "rip cs eflags rsp ss fs_base gs_base ds es fs gs").split()]


def pt(req, pid, addr=0, data=0):
    ctypes.set_errno(0)
    r = libc.ptrace(req, pid, ctypes.c_void_p(addr), ctypes.c_void_p(data))
    e = ctypes.get_errno()
    if r == -1 and e != 0:
        raise OSError(e, f"ptrace {req} pid {pid}: {os.strerror(e)}")
    return r


def map_functions(path):
    """(address, name) of every symbol in the .text of an LLD link map
    (`-Wl,-Map=...,--no-demangle`, which build.rs asks for): the shipped,
    stripped binary has no symbol table of its own."""
    row = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+[0-9a-f]+\s+\d+ +(\S.*)$")
    seen = {}
    with open(path) as f:
        header = f.readline()
        out_col, sym_col = header.index("Out"), header.index("Symbol")
        in_text = False
        for line in f:
            m = row.match(line.rstrip("\n"))
            if not m:
                continue
            col, name = m.start(2), m.group(2)
            if col == out_col:
                in_text = name == ".text"
            elif col == sym_col and in_text:
                seen.setdefault(int(m.group(1), 16), name)
    return sorted(seen.items())


def functions(binary):
    """(offset, mangled name) of every function with a size, by nm."""
    out = subprocess.run(["nm", "-S", "--defined-only", binary],
                         check=True, capture_output=True, text=True).stdout
    seen = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[2] not in "tTwW" or int(parts[1], 16) == 0:
            continue
        seen.setdefault(int(parts[0], 16), parts[3])
    return sorted(seen.items())


def base_of(pid, binary):
    real = os.path.realpath(binary)
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and os.path.realpath(fields[5]) == real and fields[2] == "00000000":
                return int(fields[0].split("-")[0], 16)
    raise RuntimeError(f"{binary} is not mapped in {pid}")


def trace(binary, argv, funcs, order, seen):
    pid = os.fork()
    if pid == 0:
        pt(PTRACE_TRACEME, 0)
        os.dup2(2, 1)  # its output to stderr: stdout is the list
        os.kill(os.getpid(), signal.SIGSTOP)
        os.execv(binary, [binary] + argv)
    _, status = os.waitpid(pid, WALL)
    pt(PTRACE_SETOPTIONS, pid, 0,
       O_TRACEFORK | O_TRACEVFORK | O_TRACECLONE | O_TRACEEXEC | O_EXITKILL)
    pt(PTRACE_CONT, pid)
    # Stopped at the exec of envc: nothing of it has run yet.
    _, status = os.waitpid(pid, WALL)
    assert os.WIFSTOPPED(status) and status >> 16 == EV_EXEC, hex(status)
    base = base_of(pid, binary)
    saved = {}  # address -> original word
    for off, _ in funcs:
        addr = base + off
        word = pt(PTRACE_PEEKTEXT, pid, addr) & 0xFFFFFFFFFFFFFFFF
        saved[addr] = word
        pt(PTRACE_POKETEXT, pid, addr, (word & ~0xFF) | 0xCC)
    names = {base + off: name for off, name in funcs}
    live = {pid}
    main_status = None
    pt(PTRACE_CONT, pid)
    while live:
        try:
            tid, status = os.waitpid(-1, WALL)
        except ChildProcessError:
            break
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            live.discard(tid)
            if tid == pid:
                main_status = status
            continue
        if not os.WIFSTOPPED(status):
            continue
        live.add(tid)
        sig = os.WSTOPSIG(status)
        event = status >> 16
        inject = 0
        if event in (EV_FORK, EV_VFORK, EV_CLONE):
            # The new task is traced too (its first stop is a SIGSTOP); a
            # forked one has its own copy of the breakpoints still armed.
            new = ctypes.c_ulong()
            libc.ptrace(0x4201, tid, None, ctypes.byref(new))  # GETEVENTMSG
            live.add(new.value)
        elif event == EV_EXEC:
            # The container's PID 1 (or a host helper): not envc any more.
            live.discard(tid)
            pt(PTRACE_DETACH, tid)
            continue
        elif sig == signal.SIGTRAP and event == 0:
            regs = Regs()
            pt(PTRACE_GETREGS, tid, 0, ctypes.addressof(regs))
            addr = regs.rip - 1
            if addr in saved:
                if names[addr] not in seen:
                    seen.add(names[addr])
                    order.append(names[addr])
                # Only the breakpoint's own byte goes back (a whole word
                # would disarm a breakpoint within the next 7 bytes). Two
                # threads can trap on one address: the second finds the
                # byte restored already and is just sent back to it.
                word = pt(PTRACE_PEEKTEXT, tid, addr) & 0xFFFFFFFFFFFFFFFF
                pt(PTRACE_POKETEXT, tid, addr, (word & ~0xFF) | (saved[addr] & 0xFF))
                regs.rip = addr
                pt(PTRACE_SETREGS, tid, 0, ctypes.addressof(regs))
            else:
                inject = sig
        elif sig != signal.SIGSTOP:
            # (SIGSTOP: a new task's first stop; envc sends none itself.)
            inject = sig
        try:
            pt(PTRACE_CONT, tid, 0, inject)
        except OSError:
            live.discard(tid)
    if main_status is None or not os.WIFEXITED(main_status) or os.WEXITSTATUS(main_status) != 0:
        sys.exit(f"envc {' '.join(argv)} did not end well (wait status {main_status}): "
                 "the list would be incomplete")


def check(order_file, map_file):
    """Says how much of the order file names functions of the build whose
    map is given; exits 1 below 90 % (the list is for another build:
    another rustc, other dependencies or profile settings change the hashes
    in the names)."""
    have = {name for _, name in map_functions(map_file)}
    with open(order_file) as f:
        want = [line.strip() for line in f if line.strip()]
    found = sum(name in have for name in want)
    share = found / len(want) if want else 0.0
    print(f"{order_file}: {found} of {len(want)} functions are in this build ({share:.0%})")
    if found < len(want):
        # Functions gone means the code changed; new ones on the start path
        # are then likely too, and each one not in the list costs a fault
        # and up to 64 KiB of RSS (11 missing of 918 cost 0.3 MiB once).
        print("  the code changed since the list was made: scripts/hot-functions.sh"
              " makes it anew", file=sys.stderr)
    if share < 0.9:
        print("  stale: the start path's code is not laid out together in this build;"
              " scripts/hot-functions.sh makes the list anew", file=sys.stderr)
        sys.exit(1)


def main():
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "--check" and args[2] == "--map":
        check(args[1], args[3])
        return
    if len(args) < 3 or "--" not in args:
        sys.exit(__doc__)
    map_file = None
    if args[0] == "--map":
        map_file, args = args[1], args[2:]
    binary = args[0]
    commands, cur = [], None
    for a in args[1:]:
        if a == "--":
            cur = []
            commands.append(cur)
        else:
            cur.append(a)
    funcs = map_functions(map_file) if map_file else functions(binary)
    order, seen = [], set()
    for argv in commands:
        before = len(order)
        trace(binary, argv, funcs, order, seen)
        print(f"{' '.join(argv)}: {len(order) - before} new functions", file=sys.stderr)
    for name in order:
        print(name)


if __name__ == "__main__":
    main()
