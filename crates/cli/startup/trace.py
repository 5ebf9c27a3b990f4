#!/usr/bin/env python3
"""Records which functions of the `stacking` binary run while each function
starts, and writes them as the start-up section of a linker script.

Why: a function runs about 2,000 functions spread over 12 MiB of code while
it starts, and the kernel maps whole page-cache folios (128 KiB to over
1 MiB here) around each page it touches. An idle trainer over S3 held 8 MiB
of mapped code. Linked first and side by side, the start-up code fits in a
few folios (see crates/cli/build.rs).

How: one-shot breakpoints. The binary runs under ptrace with an int3 on the
first byte of every function; the first time a thread reaches one, the
function is recorded and its byte restored, so each function traps once.
No PMU, perf or compiler instrumentation is needed, and it records the exact
functions of a release build (sampling missed small ones).

Usage (Linux x86-64, root or ptrace permission):
  cargo build --release -p stacking
  python3 crates/cli/startup/trace.py target/release/stacking \
      target/static/x86_64-unknown-linux-gnu/dist/stacking > crates/cli/startup/order.ld

It starts each role with TRANSFER_TYPE=INLINE, with S3 given --s3 URL (and a
bucket named by BUCKET_NAME, AWS_ACCESS_KEY/AWS_SECRET_KEY in the
environment), and with ELASTICACHE given --redis host:port; sends one health
check after --settle seconds, follows the server for 0.5 s more, then kills
it by its PID.
Patterns leave out the symbol hashes, so the script matches other builds of
the same code (release, bench, the image's static dist build).
"""

import argparse
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time

PTRACE_TRACEME = 0
PTRACE_CONT = 7
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_SETOPTIONS = 0x4200
PTRACE_O_TRACECLONE = 0x08
PTRACE_O_EXITKILL = 0x100000
PTRACE_EVENT_CLONE = 3
WALL = 0x40000000
RIP = 16  # index of rip in struct user_regs_struct

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long


class Regs(ctypes.Structure):
    _fields_ = [("r", ctypes.c_ulonglong * 27)]


def functions(binary):
    """(file virtual address, mangled name) of every function with code."""
    out = subprocess.run(
        ["nm", "--defined-only", "-S", binary], capture_output=True, text=True, check=True
    ).stdout
    funcs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in ("t", "T") and int(parts[1], 16) > 0:
            funcs.setdefault(int(parts[0], 16), parts[3])
    return funcs


def load_base(pid, binary):
    """What to add to the binary's symbol addresses: where a PIE binary's
    first byte is mapped, 0 for a fixed-address one."""
    with open(binary, "rb") as elf:
        header = elf.read(18)
    if int.from_bytes(header[16:18], "little") == 2:  # ET_EXEC
        return 0
    real = os.path.realpath(binary)
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == real and int(fields[2], 16) == 0:
                return int(fields[0].split("-")[0], 16)
    raise SystemExit(f"{binary} is not mapped in {pid}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trace_start(binary, argv, env, funcs, health, settle):
    """Runs one start-up under ptrace; returns the functions hit, in order."""
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        libc.ptrace(PTRACE_TRACEME, 0, None, None)
        os.execve(binary, [binary] + argv, env)
    os.waitpid(pid, 0)  # stopped at exec
    libc.ptrace(PTRACE_SETOPTIONS, pid, None, PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL)
    base = load_base(pid, binary)
    mem = os.open(f"/proc/{pid}/mem", os.O_RDWR)
    original = {}
    for addr in funcs:
        original[base + addr] = os.pread(mem, 1, base + addr)
        os.pwrite(mem, b"\xcc", base + addr)
    libc.ptrace(PTRACE_CONT, pid, None, 0)
    hit, seen = [], set()
    regs = Regs()
    started = time.monotonic()
    checked = None
    done_at = None
    while True:
        if checked is None and time.monotonic() - started > settle:
            checked = subprocess.Popen(health, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if done_at is None and checked is not None and checked.poll() is not None:
            done_at = time.monotonic()
        # After the reply, the server still closes the connection.
        if done_at is not None and time.monotonic() - done_at > 0.5:
            break
        try:
            tid, status = os.waitpid(-pid, WALL | os.WNOHANG)
        except ChildProcessError:
            break
        if tid == 0:
            time.sleep(0.0005)
            continue
        if not os.WIFSTOPPED(status):
            if tid == pid:
                break
            continue
        sig = os.WSTOPSIG(status)
        deliver = 0
        if sig == signal.SIGTRAP and status >> 16 == PTRACE_EVENT_CLONE:
            pass
        elif sig == signal.SIGTRAP:
            libc.ptrace(PTRACE_GETREGS, tid, None, ctypes.byref(regs))
            at = regs.r[RIP] - 1
            if at in original:
                if at not in seen:
                    seen.add(at)
                    hit.append(funcs[at - base])
                    os.pwrite(mem, original[at], at)
                regs.r[RIP] = at
                libc.ptrace(PTRACE_SETREGS, tid, None, ctypes.byref(regs))
            else:
                deliver = sig
        elif sig != signal.SIGSTOP:
            deliver = sig
        libc.ptrace(PTRACE_CONT, tid, None, deliver)
    os.close(mem)
    os.kill(pid, signal.SIGKILL)
    while True:
        try:
            os.waitpid(-pid, WALL)
        except ChildProcessError:
            break
    return hit


HASH_LEGACY = re.compile(r"17h[0-9a-f]{16}E$")
LLVM_SUFFIX = re.compile(r"\.llvm\.[0-9]+$")
CRATE_V0 = re.compile(r"Cs[0-9A-Za-z]+_")


def pattern(symbol):
    """The section pattern of a symbol, without the hashes that differ between
    builds (legacy `17h<hash>E`, v0 crate disambiguators `Cs<hash>_`)."""
    # Functions made local by LLVM get a `.llvm.<module hash>` suffix.
    symbol = LLVM_SUFFIX.sub("", symbol)
    if symbol.startswith("_ZN"):
        name = HASH_LEGACY.sub("17h*", symbol)
    elif symbol.startswith("_R"):
        name = CRATE_V0.sub("Cs*_", symbol) + "*"
    else:
        name = symbol
    # Cold functions (`#[cold]`) are in `.text.unlikely.<symbol>`.
    return f".text.{name} .text.unlikely.{name}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binaries", nargs="+", metavar="binary",
                    help="builds to trace (e.g. release and the image's static dist build); "
                         "their functions are merged")
    ap.add_argument("--s3", help="S3 endpoint URL for the S3 start-ups")
    ap.add_argument("--redis", help="Redis address (host:port) for ELASTICACHE start-ups")
    ap.add_argument("--settle", type=float, default=1.5, help="seconds before the health check")
    args = ap.parse_args()
    modes = [("INLINE", {})]
    if args.s3:
        modes.append(("S3", {"AWS_ENDPOINT_URL": args.s3}))
    if args.redis:
        modes.append(("ELASTICACHE", {"BUCKET_NAME": args.redis}))
    order, placed = [], set()
    for binary in args.binaries:
        funcs = functions(binary)
        for mode, extra in modes:
            for role in ["trainer", "reducer", "metatrainer", "driver"]:
                port = free_port()
                argv = [role, "-host", "127.0.0.1", "-sp", str(port)]
                if role == "driver":
                    argv += ["-tAddr", "127.0.0.1:9", "-rAddr", "127.0.0.1:9",
                             "-mAddr", "127.0.0.1:9"]
                env = dict(os.environ, TRANSFER_TYPE=mode, **extra)
                health = [binary, "health", "--addr", f"127.0.0.1:{port}"]
                hit = trace_start(binary, argv, env, funcs, health, args.settle)
                print(f"{binary} {role} {mode}: {len(hit)} functions", file=sys.stderr)
                for sym in hit:
                    p = pattern(sym)
                    if p not in placed:
                        placed.add(p)
                        order.append(p)
    print("/* Generated by crates/cli/startup/trace.py: the functions that run while")
    print("   the four roles start (INLINE" + (", S3" if args.s3 else "")
          + (", ELASTICACHE" if args.redis else "") + "), in the order they first run.")
    print("   Linked first, side by side, so that start-up maps few pages of code. */")
    print("SECTIONS {")
    print("  .text.stacking_startup : {")
    for p in order:
        print(f"    *({p})")
    # A static build's C library (the image's): its objects are not split
    # into a section per function, and most of what is linked runs at start.
    print("    *libc.a:*(.text .text.*)")
    print("  }")
    print("} INSERT BEFORE .text;")
    print(f"{len(order)} patterns", file=sys.stderr)


if __name__ == "__main__":
    main()
