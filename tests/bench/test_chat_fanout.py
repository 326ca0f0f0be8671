"""bench/chat_fanout.py in its smoke mode (`--quick`): it runs end to end against a real
`opsdeck web` and the raw python-socketio server, and prints every part of its report. Only the
report's shape is checked, never how fast anything was (the machine is shared)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "chat_fanout.py"
NUMBER = r"[\d,]+(?:\.\d+)?"


def test_quick_run_prints_the_whole_report(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OPSDECK_") or key.startswith("OPSDECK_TEST_")
    }
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    )
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    check_report(result.stdout)


def check_report(output: str) -> None:
    for key in ("date", "CPU", "cores", "RAM", "load average", "Python", "OpsDeck", "stack"):
        assert re.search(rf"^  {key}\s+\S", output, re.MULTILINE), key
    for name in ("embedded", "raw, 1 process"):
        assert re.search(rf"^{re.escape(name)} \(", output, re.MULTILINE), name

    # Each server: idle memory, fan-out, send -> ack, and the CPU and load of each phase.
    idle = re.findall(rf"^  idle: RSS {NUMBER} -> {NUMBER} MiB with 100 more", output, re.M)
    assert len(idle) == 2
    fanouts = re.findall(
        rf"^  fan-out at {NUMBER} msg/s to 20 clients: {NUMBER} deliveries/s, latency "
        rf"p50 ({NUMBER}) / p99 ({NUMBER}) / max ({NUMBER}) ms; {NUMBER} sent in the window, "
        rf"(\d[\d,]*) of ([\d,]+) deliveries missing",
        output,
        re.MULTILINE,
    )
    assert len(fanouts) == 2, output
    for p50, p99, most, missing, expected in fanouts:
        assert float(p50) <= float(p99) <= float(most)
        assert int(missing.replace(",", "")) <= int(expected.replace(",", ""))
    acks = re.findall(
        rf"^  send -> ack at 20 msg/s \(10 senders, nobody subscribed\): p50 {NUMBER} / p99 "
        rf"{NUMBER} / max {NUMBER} ms over {NUMBER} sends",
        output,
        re.MULTILINE,
    )
    assert len(acks) == 2, output
    phases = re.findall(
        r"^    CPU in cores: server [\d.]+, clients [\d.]+, .*; load average", output, re.M
    )
    assert len(phases) == 4

    summary = output.split("\nSummary\n", 1)[1]
    rows = re.findall(
        r"^(embedded|raw, 1 process)(?:\s+[\d.,]+|\s+n/a){11}$", summary, re.MULTILINE
    )
    assert rows == ["embedded", "raw, 1 process"], summary
    assert re.search(
        r"^  embedded: deliveries/s [\d.]+, p99 [\d.]+ x, server CPU per delivery "
        r"(?:[\d.]+|n/a) x, memory per idle connection [\d.n/a]+ x, send -> ack p99 [\d.]+ x, "
        r"CPU per send (?:[\d.]+|n/a) x$",
        summary,
        re.MULTILINE,
    ), summary
    verdicts = re.findall(r"^  embedded: .*: (met|NOT met) \(", summary, re.MULTILINE)
    assert len(verdicts) == 3, summary
