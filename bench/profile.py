"""``python -m bench.profile``: where oidc-link's CPU goes under the benchmark's load.

Starts oidc-link as ``bench.run`` does, records every server process with py-spy while the
driver runs one phase, and prints the functions with the largest share of samples: self
(the function itself) and total (with what it calls). Loopback only, bounded by --duration.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.phases import run_phase
from bench.processes import start_oidc_link


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--phase", default="signin", choices=("signin", "refresh", "discovery",
                                                              "jwks"))  # fmt: skip
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument(
        "--gil",
        action="store_true",
        help="only samples that hold the GIL: where Python code burns CPU (without it, "
        "threads waiting for Redis replies count too: where a request's time goes)",
    )
    args = parser.parse_args(argv)
    py_spy = find_py_spy()
    if py_spy is None:
        return 2
    duration = max(1.0, min(args.duration, 120.0))
    with tempfile.TemporaryDirectory(prefix="oidc-link-profile-") as temporary:
        workdir = Path(temporary)
        raw = args.raw or workdir / "stacks.txt"
        server = start_oidc_link(workdir, args.workers)
        try:
            run_phase(server, args.phase, args.users, 2.0)  # warm-up
            recorder = subprocess.Popen(
                [py_spy, "record", "--pid", str(server.process.pid), "--subprocesses",
                 "--format", "raw", "--output", str(raw), "--rate", "250",
                 "--duration", str(int(duration) + 1), "--nonblocking",
                 *(["--gil"] if args.gil else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            result = run_phase(server, args.phase, args.users, duration)
            recorder.wait(timeout=duration + 60)
        finally:
            server.stop()
        print(
            f"{args.phase} x{args.users}: {result.per_second:.1f}/s, "
            f"server CPU {result.server_cpu_per_operation:.2f} ms per operation, "
            f"{result.redis_commands_per_operation:.1f} Redis commands per operation"
        )
        print(summarize(raw.read_text(), args.top))
    return 0


def summarize(collapsed: str, top: int) -> str:
    """Self and total shares of each function in py-spy's collapsed stacks, idle left out
    (threads waiting on a socket or a lock)."""
    self_samples: Counter[str] = Counter()
    total_samples: Counter[str] = Counter()
    busy = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not frames or is_idle(frames[-1]):
            continue
        samples = int(count)
        busy += samples
        self_samples[frames[-1]] += samples
        for frame in set(frames):
            total_samples[frame] += samples
    if not busy:
        return "no busy samples"
    lines = [f"{busy} busy samples", "", "self %  total %  function"]
    for frame, samples in total_samples.most_common(top):
        lines.append(
            f"{100 * self_samples[frame] / busy:6.1f}  {100 * samples / busy:6.1f}   {frame}"
        )
    lines += ["", "self time by library (the file of the innermost frame):", ""]
    libraries: Counter[str] = Counter()
    for frame, samples in self_samples.items():
        libraries[library_of(frame)] += samples
    for name, samples in libraries.most_common():
        lines.append(f"{100 * samples / busy:6.1f}   {name}")
    lines += ["", "largest self time:", ""]
    for frame, samples in self_samples.most_common(top):
        lines.append(f"{100 * samples / busy:6.1f}   {frame}")
    return "\n".join(lines)


# A frame's library, by its file (first match wins); see bench/in_process.py for the same
# split of cProfile's figures.
LIBRARIES = (
    ("redis-py + hiredis", ("redis/", "hiredis")),
    ("granian (its Python side; HTTP itself runs in Rust)", ("granian/",)),
    ("gunicorn", ("gunicorn/", "concurrent/futures", "selectors.py", "socket.py")),
    ("Flask + Werkzeug", ("flask/", "werkzeug/")),
    ("Authlib", ("authlib/", "joserfc/")),
    ("Jinja", ("jinja2/", "markupsafe/")),
    ("PyJWT + cryptography", ("jwt/", "cryptography/")),
    (
        "logging (oidc_link/logs/, request_log.py, logging)",
        ("oidc_link/logs", "request_log.py", "logging/", "orjson"),
    ),
    ("metrics", ("metrics", "prometheus_client/")),
    ("json", ("json/",)),
    ("oidc-link", ("oidc_link/",)),
)


def library_of(frame: str) -> str:
    where = frame[frame.rfind("(") :]
    return next(
        (name for name, marks in LIBRARIES if any(mark in where for mark in marks)),
        "Python standard library and the rest",
    )


IDLE = ("select ", "poll ", "accept ", "wait ", "_wait_for_tstate_lock", "recv_into ",
        "readinto ", "sleep ")  # fmt: skip


def find_py_spy() -> str | None:
    """py-spy on the PATH or beside this Python; None (and why, on stderr) without it."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if Path(py_spy).exists():
        return py_spy
    print("py-spy is not installed: pip install -e '.[bench]'", file=sys.stderr)
    return None


def is_idle(frame: str) -> bool:
    return frame.startswith(IDLE) or (" (selectors.py" in frame and "select" in frame)


if __name__ == "__main__":
    sys.exit(main())
