"""CPU accounting of a measurement: CPU seconds of our processes, and of everything else.

The benchmark machine may be shared; ``foreign_share`` (busy CPU of all other processes
over the available CPU time) tells how disturbed a measurement was.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def _busy_ticks() -> int:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values[:8]) - idle


def _proc_ticks(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    after = text.rsplit(")", 1)[1].split()
    # fields after ")" start at field 3 (state); utime=14, stime=15, cutime=16, cstime=17
    return int(after[11]) + int(after[12]) + int(after[13]) + int(after[14])


@dataclass
class CpuMeter:
    """``with CpuMeter({"rasa": pid, ...}) as meter: ...`` then ``meter.result()``."""

    pids: dict[str, int]
    _start: dict[str, int] = field(default_factory=dict)
    _end: dict[str, int] = field(default_factory=dict)
    _busy: tuple[int, int] = (0, 0)
    _wall: tuple[float, float] = (0.0, 0.0)

    def __enter__(self) -> CpuMeter:
        self.pids = {**self.pids, "bench": os.getpid()}
        self._start = {name: _proc_ticks(pid) for name, pid in self.pids.items()}
        self._busy = (_busy_ticks(), 0)
        self._wall = (time.monotonic(), 0.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self._end = {name: _proc_ticks(pid) for name, pid in self.pids.items()}
        self._busy = (self._busy[0], _busy_ticks())
        self._wall = (self._wall[0], time.monotonic())

    def result(self) -> dict:
        wall = self._wall[1] - self._wall[0]
        ours = {name: (self._end[name] - self._start[name]) / TICKS for name in self.pids}
        busy = (self._busy[1] - self._busy[0]) / TICKS
        foreign = max(0.0, busy - sum(ours.values()))
        return {
            "wall_s": wall,
            "cpu_s": ours,
            "foreign_cpu_s": foreign,
            "foreign_share": foreign / (wall * CORES) if wall > 0 else 0.0,
        }
