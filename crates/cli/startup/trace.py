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

Usage (Linux x86-64, root or ptrace permission), with a redis-server and
two S3-API servers on loopback: moto, and the testkit's server that the
services bench uses (`cargo run --release -p stacking-testkit --example
s3_server` prints its endpoint, bucket and keys). A function's start-up
check of its bucket parses each server's reply with different code, so
trace against both and merge (--runs). Builds link glibc statically
(.cargo/config.toml), so glibc's functions are laid out too.
  cargo build --release -p stacking
  CARGO_TARGET_DIR=target/static cargo build --profile dist \
      --target x86_64-unknown-linux-gnu -p stacking
  R=target/x86_64-unknown-linux-gnu/release/stacking
  D=target/static/x86_64-unknown-linux-gnu/dist/stacking
  AWS_ACCESS_KEY=.. AWS_SECRET_KEY=.. BUCKET_NAME=bucket \
  python3 crates/cli/startup/trace.py $R $D --s3 http://127.0.0.1:5000 \
      --redis 127.0.0.1:6379 --save-runs moto.json > /dev/null
  AWS_ACCESS_KEY=.. AWS_SECRET_KEY=.. BUCKET_NAME=.. \
  python3 crates/cli/startup/trace.py $R $D --s3 <testkit endpoint> \
      --save-runs testkit.json > /dev/null
  python3 crates/cli/startup/trace.py --runs moto.json testkit.json \
      --save-runs runs.json > crates/cli/startup/order.ld
Then build both again (the script changes only where code is placed), and
run --misses (below) on the new builds, against each server.

It starts each role with TRANSFER_TYPE=INLINE, with S3 given --s3 URL (and a
bucket named by BUCKET_NAME, AWS_ACCESS_KEY/AWS_SECRET_KEY in the
environment), and with ELASTICACHE given --redis host:port, each once with
the default log filter and once with RUST_LOG set; sends three health checks
back to back and three at once after --settle seconds, follows the server for
0.5 s more, then kills it by its PID.

The breakpoints change the threads' timing, so code that only a race runs at
full speed is missed (tokio's slow path for a join handle dropped while its
task runs, for one). --misses N finds it: each start-up runs N times at full
speed under `perf record -e page-faults -c 1 -d`, and every instruction
fetch that faults outside the start-up block names a function to add. A
fault names only the first function of a folio, so link with the new script
and run again until none is found (three rounds here):
  python3 crates/cli/startup/trace.py $R $D --runs runs.json --misses 2 \
      --s3 URL --redis HOST:PORT --save-runs runs.json > crates/cli/startup/order.ld
Traces differ a little from run to run, so --runs merges several.

Layout: one start-up runs 1.3 to 2.2 MB of the 2.2 MB of start-up code, so
the functions are grouped by the roles and modes that run them, and the
groups are placed so that each start-up's code sits close together (see
`grouped`); the script prints how many bytes of gap the runs map each way.
Every function the traces hit must match a pattern, or its page pulls a
folio of unrelated code in: the script also names the aliases LLVM made of
merged functions and the archive members of assembly and C functions, whose
code is in a plain `.text` (ring's, and glibc's in a static build).
Patterns leave out the symbol hashes, so the script matches other builds of
the same code (release, bench, the image's static dist build). --save-runs
and --runs keep a trace and lay it out again without tracing.
"""

import argparse
import bisect
import ctypes
import glob
import json
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
    """file virtual address -> (mangled names, size) of every function with
    code. An address can have several names: LLVM merges identical functions
    into aliases, and the section is named after only one of them."""
    out = subprocess.run(
        ["nm", "--defined-only", "-S", binary], capture_output=True, text=True, check=True
    ).stdout
    funcs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in ("t", "T") and int(parts[1], 16) > 0:
            names, size = funcs.setdefault(int(parts[0], 16), ([], int(parts[1], 16)))
            names.append(parts[3])
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
    """Runs one start-up under ptrace; returns the functions hit, in order,
    as (names, size)."""
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


def archive_patterns(binary):
    """symbol -> section pattern for the functions of C and assembly objects,
    which sit in a plain `.text` (ring's SHA-256, for one, and all of
    glibc). Two kinds of archive hold them:
    - the static libraries that build scripts left beside the binary
      (`<profile dir>/build/*/out/*.a`), whose members are named
      `<hash>-<source>.o`; the hash changes between builds, and Cargo links
      them bundled in the crate's rlib, so the pattern names any archive;
    - the C library and compiler runtime that a `crt-static` build links
      (libc.a, libm-<version>.a, libgcc.a, libgcc_eh.a). A glibc member keeps
      its variants in `.text.<isa>` sections (`.text.evex` for one), so the
      pattern takes all of the member's code."""
    found = {}
    build = os.path.join(os.path.dirname(os.path.abspath(binary)), "build")
    for lib in glob.glob(os.path.join(build, "*", "out", "*.a")):
        for member, symbol in archive_functions(lib):
            source = member.split("-", 1)[-1]
            found[symbol] = f"*:*{source}(.text .text.{symbol} .text.unlikely.{symbol})"
    for lib in c_library_archives():
        for member, symbol in archive_functions(lib):
            found.setdefault(symbol, f"*.a:{member}(.text .text.*)")
    return found


def archive_functions(lib):
    """(member, symbol) for each function an archive defines."""
    out = subprocess.run(["nm", "-A", "--defined-only", lib],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        # t/T: functions; i: ifuncs (memcpy); W: weak aliases (malloc_trim).
        if len(parts) == 3 and parts[1] in ("t", "T", "i", "W"):
            yield parts[0].rsplit(":", 2)[-2], parts[2]


def c_library_archives():
    """The archives of glibc and of GCC's runtime that the C compiler links
    into a static binary; none where there is no C compiler to ask."""
    def ask(flag):
        try:
            out = subprocess.run(["cc", flag], capture_output=True, text=True).stdout.strip()
        except OSError:
            return None
        return out if os.path.isabs(out) and os.path.exists(out) else None
    libc, libgcc = ask("-print-file-name=libc.a"), ask("-print-libgcc-file-name")
    archives = []
    if libc:
        # libm.a is a linker script naming libm-<version>.a and libmvec.a.
        archives += [libc] + glob.glob(os.path.join(os.path.dirname(libc), "libm-*.a"))
    if libgcc:
        archives += [libgcc] + glob.glob(os.path.join(os.path.dirname(libgcc), "libgcc_eh.a"))
    return archives


def pattern(symbol, archived=None):
    """The section pattern of a symbol, without the hashes that differ between
    builds (legacy `17h<hash>E`, v0 crate disambiguators `Cs<hash>_`)."""
    # Functions made local by LLVM get a `.llvm.<module hash>` suffix.
    symbol = LLVM_SUFFIX.sub("", symbol)
    if archived and symbol in archived:
        return archived[symbol]
    if symbol.startswith("_ZN"):
        name = HASH_LEGACY.sub("17h*", symbol)
    elif symbol.startswith("_R"):
        name = CRATE_V0.sub("Cs*_", symbol) + "*"
    else:
        name = symbol
    # Cold functions (`#[cold]`) are in `.text.unlikely.<symbol>`.
    return f".text.{name} .text.unlikely.{name}"


# The unit the kernel maps around a touched page: page-cache folios here are
# 128 KiB to over 1 MiB, so a gap between two start-up functions of the same
# run costs its own size up to about this much.
FOLIO = 128 * 1024


def wasted(order, sizes, runs):
    """Bytes of other code mapped between each run's start-up functions: the
    sum over runs of every gap between two of its functions, each gap counted
    up to FOLIO (a longer gap is skipped, minus the folios at its edges)."""
    at, offset = {}, 0
    for p in order:
        at[p] = offset
        offset += sizes[p]
    total = 0
    for hits in runs.values():
        spans = sorted((at[p], at[p] + sizes[p]) for p in set(hits))
        for (_, end), (start, _) in zip(spans, spans[1:]):
            total += min(max(start - end, 0), FOLIO)
    return total


def grouped(runs, sizes):
    """The start-up functions grouped by which runs (role and mode) use them,
    the groups laid out greedily from both ends so that each run's groups
    sit close together: the next group is the one that adds the fewest bytes
    of gap (see `wasted`), to the runs it serves and to the runs it pushes
    apart. Inside a group, functions keep the order they first ran in."""
    first, users = {}, {}
    for name, hits in runs.items():
        for p in hits:
            first.setdefault(p, len(first))
            users.setdefault(p, set()).add(name)
    groups = {}
    for p in sorted(users, key=first.get):
        groups.setdefault(frozenset(users[p]), []).append(p)
    size = {g: sum(sizes[p] for p in ps) for g, ps in groups.items()}
    remaining = {r: sum(1 for g in groups if r in g) for r in runs}
    seed = max(groups, key=lambda g: len(g) * size[g])
    left, right = [], [seed]
    # Bytes from each end to the nearest function of each run placed so far.
    gap = {"left": {r: 0 for r in seed}, "right": {r: 0 for r in seed}}
    for r in seed:
        remaining[r] -= 1
    todo = set(groups) - {seed}

    def cost(g, end):
        c = 0
        for r, d in gap[end].items():
            if r in g:
                c += min(d, FOLIO)
            elif remaining[r] > 0:
                c += min(d + size[g], FOLIO) - min(d, FOLIO)
        return c

    while todo:
        g, end = min(((g, e) for g in todo for e in ("left", "right")),
                     key=lambda ge: (cost(*ge), -len(ge[0]), first[groups[ge[0]][0]]))
        todo.remove(g)
        (left if end == "left" else right).append(g)
        other = "right" if end == "left" else "left"
        for r in list(gap[end]):
            gap[end][r] = 0 if r in g else gap[end][r] + size[g]
        for r in g:
            if r not in gap[other]:
                # A run seen for the first time: its distance from the other end.
                gap[other][r] = sum(size[x] for x in left + right) - size[g]
            gap[end][r] = 0
            remaining[r] -= 1
    return [p for g in list(reversed(left)) + right for p in groups[g]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binaries", nargs="*", metavar="binary",
                    help="builds to trace (e.g. release and the image's static dist build); "
                         "their functions are merged")
    ap.add_argument("--s3", help="S3 endpoint URL for the S3 start-ups")
    ap.add_argument("--redis", help="Redis address (host:port) for ELASTICACHE start-ups")
    ap.add_argument("--settle", type=float, default=1.5, help="seconds before the health check")
    ap.add_argument("--save-runs", metavar="FILE",
                    help="also write each run's functions and their sizes (JSON)")
    ap.add_argument("--runs", metavar="FILE", nargs="+",
                    help="lay out the runs saved by --save-runs instead of tracing; several "
                         "files are merged (a race in the traced code can differ between traces)")
    ap.add_argument("--misses", type=int, metavar="N", default=0,
                    help="after tracing (or --runs), run each start-up N times at full speed "
                         "under `perf record -e page-faults` and add the functions that faulted "
                         "outside the start-up block (the binaries must be linked with the "
                         "current script; link again and repeat until none is found)")
    args = ap.parse_args()
    modes = [("INLINE", {})]
    if args.s3:
        modes.append(("S3", {"AWS_ENDPOINT_URL": args.s3}))
    if args.redis:
        modes.append(("ELASTICACHE", {"BUCKET_NAME": args.redis}))
    if args.runs:
        runs, sizes = {}, {}
        for path in args.runs:
            with open(path) as saved:
                data = json.load(saved)
            for name, hits in data["runs"].items():
                merged = runs.setdefault(name, [])
                seen = set(merged)
                merged.extend(p for p in hits if p not in seen and not seen.add(p))
            for p, size in data["sizes"].items():
                sizes[p] = max(sizes.get(p, 0), size)
    elif args.binaries:
        runs, sizes = trace_all(args.binaries, modes, args.settle)
    else:
        ap.error("give binaries to trace, or --runs")
    for binary in args.binaries if args.misses else []:
        archived = archive_patterns(binary)
        for name, missed in misses(binary, modes, min(args.settle, 0.5), args.misses).items():
            print(f"{binary} {name}: {len(missed)} functions outside the block", file=sys.stderr)
            add_hits(runs.setdefault(name, []), sizes, missed, archived)
    if args.save_runs:
        with open(args.save_runs, "w") as out:
            json.dump({"runs": runs, "sizes": sizes}, out)
    in_first_order = list(dict.fromkeys(p for hits in runs.values() for p in hits))
    order = grouped(runs, sizes)
    before, after = wasted(in_first_order, sizes, runs), wasted(order, sizes, runs)
    print(f"gap bytes mapped over all runs: {before} in first-run order, {after} grouped",
          file=sys.stderr)
    if before < after:
        order = in_first_order
    print("/* Generated by crates/cli/startup/trace.py: the functions that run while")
    traced_modes = dict.fromkeys(name.split("/")[1] for name in runs)
    print("   the four roles start (" + ", ".join(traced_modes) + "), grouped by the")
    print("   roles and modes that run them. Linked first, side by side, so that")
    print("   start-up maps few pages of code. */")
    print("SECTIONS {")
    print("  .text.stacking_startup : {")
    # The C runtime's start-up code is in plain `.text` sections: the entry
    # point (crt1.o, Scrt1.o or rcrt1.o) and frame_dummy (crtbegin*.o).
    print("    *crt1.o(.text)")
    print("    *crtbegin*.o(.text)")
    for p in order:
        print(f"    *({p})" if p.startswith(".text") else f"    {p}")
    print("  }")
    print("} INSERT BEFORE .text;")
    print(f"{len(order)} patterns", file=sys.stderr)


ROLES = ["trainer", "reducer", "metatrainer", "driver"]


def role_argv(role, port):
    argv = [role, "-host", "127.0.0.1", "-sp", str(port)]
    if role == "driver":
        argv += ["-tAddr", "127.0.0.1:9", "-rAddr", "127.0.0.1:9", "-mAddr", "127.0.0.1:9"]
    return argv


def health_checks(binary, port):
    """Three checks back to back, as a prober sends them, then three at once:
    a check can meet another connection still open or closing, which runs
    other code (a join handle dropped before its task ends, a waker woken
    from another thread)."""
    check = f"{binary} health --addr 127.0.0.1:{port}"
    return ["sh", "-c", f"{check}; {check}; {check}; {check} & {check} & {check} & wait"]


def role_env(mode, extra, log):
    env = dict(os.environ, TRANSFER_TYPE=mode, **extra)
    # The default log filter and one from RUST_LOG are parsed by different
    # code (the bench sets RUST_LOG=warn).
    env.pop("RUST_LOG", None)
    if log:
        env["RUST_LOG"] = log
    return env


def misses(binary, modes, settle, repeats):
    """Runs each start-up `repeats` times at full speed under `perf record -e
    page-faults` and returns, per run, the functions whose code faulted
    outside the start-up block: code the traces missed. Each fault names only
    the first function of a folio that was not mapped yet, so the layout has
    to be linked again and checked again until nothing is found."""
    funcs = functions(binary)
    starts = sorted(funcs)
    block = section(binary, ".text.stacking_startup")
    found = {}
    for mode, extra in modes:
        for role, log in ((r, l) for r in ROLES for l in (None, "warn")):
            for _ in range(repeats):
                port = free_port()
                data = f"/tmp/stacking-trace-{os.getpid()}.perf"
                perf = subprocess.Popen(
                    ["perf", "record", "-q", "-c", "1", "-e", "page-faults", "-d", "-o", data,
                     "--", binary] + role_argv(role, port),
                    env=role_env(mode, extra, log),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(settle)
                subprocess.run(health_checks(binary, port),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.3)
                with open(f"/proc/{perf.pid}/task/{perf.pid}/children") as children:
                    child = int(children.read().split()[0])
                base = load_base(child, binary)
                os.kill(child, signal.SIGKILL)
                perf.wait()
                out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,addr"],
                                     capture_output=True, text=True).stdout
                os.unlink(data)
                hits = found.setdefault(f"{role}/{mode}", [])
                for line in out.split("\n"):
                    fields = line.split()
                    if len(fields) != 2:
                        continue
                    addr, ip = int(fields[0], 16) - base, int(fields[1], 16) - base
                    # An instruction fetch: the fault is at the instruction.
                    if addr != ip or block[0] <= ip < block[1]:
                        continue
                    i = bisect.bisect_right(starts, ip) - 1
                    if i >= 0 and ip < starts[i] + funcs[starts[i]][1] and starts[i] not in hits:
                        hits.append(starts[i])
    return {run: [funcs[a] for a in addrs] for run, addrs in found.items()}


def section(binary, name):
    """[start, end) of a section's file virtual addresses."""
    out = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = line.replace("[", " ").replace("]", " ").split()
        if len(fields) > 5 and fields[1] == name:
            start = int(fields[3], 16)
            return start, start + int(fields[5], 16)
    raise SystemExit(f"{binary} has no {name} section (linked without the script?)")


def trace_all(binaries, modes, settle):
    """Traces every role in every mode with each binary, with the default log
    filter and with RUST_LOG set; returns each run's
    function patterns in the order they first ran (runs named role/mode,
    merged over the binaries) and each pattern's size in bytes (the largest
    over the binaries)."""
    runs, sizes = {}, {}
    for binary in binaries:
        funcs = functions(binary)
        archived = archive_patterns(binary)
        for mode, extra in modes:
            for role, log in ((r, l) for r in ROLES for l in (None, "warn")):
                port = free_port()
                argv = role_argv(role, port)
                env = role_env(mode, extra, log)
                health = health_checks(binary, port)
                hit = trace_start(binary, argv, env, funcs, health, settle)
                print(f"{binary} {role} {mode} RUST_LOG={log}: {len(hit)} functions",
                      file=sys.stderr)
                add_hits(runs.setdefault(f"{role}/{mode}", []), sizes, hit, archived)
    return runs, sizes


def add_hits(hits, sizes, functions_hit, archived):
    """Appends the patterns of `functions_hit` ((names, size) each) to a
    run's `hits`, once each, and records their sizes."""
    for names, size in functions_hit:
        # One pattern per alias; at most one of them names the section.
        owner = pattern(names[0], archived)
        for p in (pattern(name, archived) for name in names):
            sizes[p] = max(sizes.get(p, 0), size if p == owner else 0)
            if p not in hits:
                hits.append(p)


if __name__ == "__main__":
    main()
