"""Is a 2-thread process slow because of ONNX Runtime, or because of where the machine runs it?
(issue 13; BENCHMARKS.md, "Sizing: the 2-thread ground truth is bimodal").

Times one model at 2 intra-op threads (40 runs after 5 warm-ups, median) and prints, for each
thread of the process that used CPU during the timed runs, the vCPU it last ran on, its CPU
ticks and its context switches. Run it several times in a row: on the project's 2-vCPU VM some
processes are 2.3x slower than others while both threads sit on different vCPUs and are busy
for the whole wall time, which points at the host (the vCPUs' placement), not at the process.

    P=~/.cache/edgepack/bench-tf-venv/bin/python   # onnxruntime, numpy
    for i in 1 2 3 4 5 6; do $P benches/two_thread_regimes.py MODEL.onnx 1x3x48x320; done
"""

import os
import sys
import time

import numpy as np
import onnxruntime as ort


def threads_now():
    """Each thread of this process: (vCPU it last ran on, user + system ticks)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        # After the command name: field 3 is index 0, so utime (14) is 11, stime 12, processor (39) 36.
        out[tid] = (int(fields[36]), int(fields[11]) + int(fields[12]))
    return out


def main():
    ort.set_default_logger_severity(3)
    model, dims = sys.argv[1], [int(d) for d in sys.argv[2].split("x")]
    x = np.random.rand(*dims).astype(np.float32)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 2, 1
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for _ in range(5):
        sess.run(None, {name: x})
    before, times_ms = threads_now(), []
    for _ in range(40):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times_ms.append((time.perf_counter() - t) * 1e3)
    after = threads_now()
    busy = {tid: (cpu, ticks - before.get(tid, (0, 0))[1]) for tid, (cpu, ticks) in after.items()
            if ticks > before.get(tid, (0, 0))[1]}
    wall_ticks = sum(times_ms) / 1e3 * os.sysconf("SC_CLK_TCK")
    print(f"median {np.median(times_ms):.1f} ms; wall {wall_ticks:.0f} ticks; "
          "threads (vCPU, ticks): " + ", ".join(f"{c}/{t}" for c, t in busy.values()))
    for tid in busy:
        status = open(f"/proc/self/task/{tid}/status").read().splitlines()
        print("   ", tid, " ".join(l.replace("\t", " ") for l in status if "ctxt" in l))


if __name__ == "__main__":
    main()
