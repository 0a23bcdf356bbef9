"""``python -m bench.flame``: issue 16 item 6's profile of the final state, in under 2 minutes.

Serves oidc-link as ``bench.run`` does, drives sign-ins for ``--duration`` seconds, and
records every server process with py-spy twice at once (samples of threads holding the GIL:
CPU, not waiting): a flame graph SVG (``--svg``, in docs/ by default) and the raw stacks,
from which it prints the share of the sign-in's busy samples in each of oidc-link's own
functions, self and with what they call, flagging any
whose self share is above ``--limit`` (5 %: "no single piece of our own code above 5 % of a
sign-in"). Needs py-spy (the ``bench`` extra); loopback only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.phases import run_phase
from bench.processes import start_oidc_link
from bench.profile import find_py_spy, is_idle

REPOSITORY = Path(__file__).resolve().parent.parent
OWN_CODE = "oidc_link/"


@dataclass(frozen=True)
class Share:
    """One of our functions: percent of the busy samples in it, alone and with callees."""

    function: str
    self_percent: float
    total_percent: float


@dataclass(frozen=True)
class Profile:
    busy: int
    own: list[Share]  # by function
    modules: dict[str, float]  # self percent of each of our modules, its functions together

    @property
    def own_self_percent(self) -> float:
        """All of our code's self time together."""
        return sum(self.modules.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flame", description=__doc__)
    parser.add_argument("--svg", type=Path, default=REPOSITORY / "docs" / "flame-signin.svg")
    parser.add_argument("--table", type=Path, help="also write the table to this file")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds (5-90)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--limit", type=float, default=5.0, help="percent to flag (self)")
    parser.add_argument("--top", type=int, default=25, help="rows of the table")
    parser.add_argument(
        "--waiting",
        action="store_true",
        help="also count samples of threads that do not hold the GIL (waiting for Redis "
        "replies, mostly): where a request's time goes rather than its CPU",
    )
    args = parser.parse_args(argv)
    py_spy = find_py_spy()
    if py_spy is None:
        return 2
    duration = int(max(5.0, min(args.duration, 90.0)))
    with tempfile.TemporaryDirectory(prefix="oidc-link-flame-") as temporary:
        workdir = Path(temporary)
        raw = workdir / "stacks.txt"
        server = start_oidc_link(workdir, args.workers)
        try:
            run_phase(server, "signin", args.users, 2.0)  # warm-up: imports, pools, keys
            common = ["record", "--pid", str(server.process.pid), "--subprocesses",
                      "--function", "--nonblocking", "--rate", str(args.rate),
                      "--duration", str(duration + 1),
                      *([] if args.waiting else ["--gil"])]  # fmt: skip
            recorders = [
                subprocess.Popen(
                    [py_spy, *common, "--format", form, "--output", str(output)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                for form, output in (("flamegraph", args.svg), ("raw", raw))
            ]
            result = run_phase(server, "signin", args.users, duration)
            for recorder in recorders:
                _, errors = recorder.communicate(timeout=duration + 60)
                if recorder.returncode != 0:
                    print(f"py-spy failed: {errors.decode()[-2000:]}", file=sys.stderr)
                    return 1
        finally:
            server.stop()
        profile = own_shares(raw.read_text())
    lines = [
        f"sign-in x{args.users} for {duration} s: {result.per_second:.1f}/s, server CPU "
        f"{result.server_cpu_per_operation:.2f} ms per sign-in; flame graph: {args.svg}",
        "",
        *report(profile, args.limit, args.top),
    ]
    text = "\n".join(lines)
    print(text)
    if args.table:
        args.table.write_text(text + "\n")
    return 0


def own_shares(collapsed: str) -> Profile:
    """Our functions' shares of py-spy's collapsed stacks (``--function``: one line number
    per function), threads waiting on a socket or a lock left out."""
    self_samples: Counter[str] = Counter()
    total_samples: Counter[str] = Counter()
    busy = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames or is_idle(frames[-1]):
            continue
        samples = int(count)
        busy += samples
        if OWN_CODE in frames[-1]:
            self_samples[frames[-1]] += samples
        for frame in {f for f in frames if OWN_CODE in f}:
            total_samples[frame] += samples
    if not busy:
        return Profile(0, [], {})
    shares = [
        Share(frame, 100 * self_samples[frame] / busy, 100 * samples / busy)
        for frame, samples in total_samples.items()
    ]
    modules: Counter[str] = Counter()
    for frame, samples in self_samples.items():
        modules[module_of(frame)] += samples
    return Profile(busy, shares, {name: 100 * n / busy for name, n in modules.most_common()})


def module_of(frame: str) -> str:
    """``oidc_link/web/pages.py`` of ``show (oidc_link/web/pages.py:72)``."""
    where = frame[frame.rfind("(") + 1 :].rstrip(")")
    path = where.rpartition(":")[0] or where
    return path[path.find(OWN_CODE) :]


def report(profile: Profile, limit: float, top: int) -> list[str]:
    if not profile.busy:
        return ["no busy samples"]
    over = [f"`{s.function}`" for s in profile.own if s.self_percent > limit]
    over += [f"`{name}` (module)" for name, percent in profile.modules.items() if percent > limit]
    by_self = sorted(profile.own, key=lambda s: -s.self_percent)[:top]
    by_total = sorted(profile.own, key=lambda s: -s.total_percent)[:top]
    lines = [
        f"{profile.busy} busy samples; oidc-link's own functions hold "
        f"{profile.own_self_percent:.1f} % of them (self).",
        "",
        f"Our functions by self share (item 6: none above {limit:g} %):",
        "",
        "| self % | with callees % | function |",
        "|---|---|---|",
        *(f"| {s.self_percent:.1f} | {s.total_percent:.1f} | `{s.function}` |" for s in by_self),
        "",
        "Our functions by share with callees (where a sign-in's time passes through):",
        "",
        "| with callees % | self % | function |",
        "|---|---|---|",
        *(f"| {s.total_percent:.1f} | {s.self_percent:.1f} | `{s.function}` |" for s in by_total),
        "",
        "Our modules by self share (their functions together):",
        "",
        "| self % | module |",
        "|---|---|",
        *(f"| {percent:.1f} | `{name}` |" for name, percent in list(profile.modules.items())[:top]),
        "",
    ]
    if over:
        lines += [f"ABOVE {limit:g} % (self): " + ", ".join(over)]
    else:
        lines += [
            f"No function and no module of our own above {limit:g} % of a sign-in's samples (self)."
        ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
