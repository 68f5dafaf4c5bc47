"""Where a build's CPU goes, process by process, and when a core sits idle.

Runs one ``catalogue build`` (arguments after ``--`` are the build's own) and,
every ``--every`` seconds, reads from ``/proc``:

- each process of the build's tree: its CPU (user + system) and niceness, kept at
  its last reading; a process is named by its command line and, for the build's
  forks (which share it), by its place in the order they appeared;
- the machine's busy cores (``/proc/stat``), printed as a timeline: a full build
  at 100,000 formations keeps both cores busy but for its start and its end.

Linux only. The figures are sampled: a process that lives less than ``--every``
is missed, and one's last quarter-second may be too. Example::

    .venv/bin/python bench/processes.py -- --content bench/out/catalogue-100000.xml \\
        --build /tmp/b --full --today 2026-11-29
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                found += [int(x) for x in handle.read().split()]
    except OSError:
        pass
    return found


def _tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += _children(pid)
    return pids


def _stat(pid: int) -> tuple[float, int] | None:
    """(CPU seconds, niceness) of a process, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK, int(fields[16])


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            parts = handle.read().split(b"\0")
    except OSError:
        return "?"
    return " ".join(os.path.basename(p.decode(errors="replace")) for p in parts[:3] if p)


def _busy() -> tuple[int, int]:
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    return sum(values), values[3] + values[4]  # all, idle + iowait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=float, default=0.25, help="seconds between two readings")
    parser.add_argument("build_args", nargs=argparse.REMAINDER, help="-- then the arguments of catalogue build")
    options = parser.parse_args()
    arguments = [a for a in options.build_args if a != "--"]
    cores = os.cpu_count() or 1
    started = time.monotonic()
    # The console script pip installed beside this interpreter (make install).
    command = os.path.join(os.path.dirname(sys.executable), "catalogue")
    if not os.path.exists(command):
        sys.exit(f"{command} : introuvable (make install)")
    process = subprocess.Popen([command, "build", *arguments])
    seen: dict[int, tuple[float, float, float, int, str]] = {}  # pid → first seen, last seen, CPU, nice, command
    timeline: list[float] = []
    last, last_time = _busy(), time.monotonic()
    while process.poll() is None:
        now = time.monotonic() - started
        for pid in _tree(process.pid):
            stat = _stat(pid)
            if stat is not None:
                first = seen[pid][0] if pid in seen else now
                seen[pid] = (first, now, stat[0], stat[1], seen[pid][4] if pid in seen else _command(pid))
        if time.monotonic() - last_time >= 1.0:
            busy = _busy()
            total, idle = busy[0] - last[0], busy[1] - last[1]
            timeline.append(cores * (total - idle) / total if total else 0.0)
            last, last_time = busy, time.monotonic()
        time.sleep(options.every)
    wall = time.monotonic() - started
    print(f"\nbuild exit code {process.returncode}, wall {wall:.1f} s")
    print("| process (in order of appearance) | from | to | CPU s | nice |")
    print("|---|---|---|---|---|")
    for order, (pid, (first, end, cpu, nice, command)) in enumerate(sorted(seen.items(), key=lambda item: item[1][0])):
        name = "build" if pid == process.pid else f"fork {order}"
        print(f"| {name} ({command}) | {first:.1f} | {end:.1f} | {cpu:.1f} | {nice} |")
    print(f"| total | | | {sum(v[2] for v in seen.values()):.1f} | |")
    idle = sum(max(0.0, cores - busy) for busy in timeline)
    print(f"\nidle core-seconds: {idle:.1f} over {len(timeline)} s; busy cores each second:")
    print(" ".join(f"{busy:.1f}" for busy in timeline))


if __name__ == "__main__":
    main()
