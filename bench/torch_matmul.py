#!/usr/bin/env python3
"""The PyTorch anchor of bench/gemm.bench.ts: torch.matmul on the same GPU, measured the way the
TypeScript side measures cuBLAS through gpuffi.

  python3 bench/torch_matmul.py '{"cases": [{"mode": "bf16", "n": 4096, "iters": 20}], "repeats": 7,
                                  "issue": {"n": 64, "calls": 100, "bursts": 51}}'

- throughput: CUDA events around `iters` back-to-back torch.matmul(a, b, out=c) of n×n random
  matrices in [-1, 1), the median over `repeats` of the time per matmul, as TFLOP/s (2n³ flops);
- issue time: host time per call over bursts of `calls` n×n matmuls, the GPU drained between
  bursts so that it keeps up (the median over `bursts`), both torch.matmul(a, b) (allocates its
  result through the caching allocator) and with out=c.
Modes: fp32 (allow_tf32 off), tf32 (allow_tf32 on), fp16, bf16 (output in the operand type).
Prints one JSON object on stdout.
"""
import json
import statistics
import sys
import time

import torch

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def operands(mode, n):
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    make = lambda: (torch.rand(n, n, device="cuda") * 2 - 1).to(DTYPES[mode])
    return make(), make(), torch.empty(n, n, device="cuda", dtype=DTYPES[mode])


def throughput(mode, n, iters, repeats):
    a, b, c = operands(mode, n)
    for _ in range(3):
        torch.matmul(a, b, out=c)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        for _ in range(iters):
            torch.matmul(a, b, out=c)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / iters)
    ms = statistics.median(times)
    return {"mode": mode, "n": n, "iters": iters, "ms": ms, "tflops": 2 * n**3 / (ms * 1e-3) / 1e12}


def per_call_us(call, calls, bursts, warmup=1):
    """Host µs per call: the median over `bursts` bursts of `calls` calls, the GPU drained between bursts."""
    for _ in range(warmup):
        call()
    torch.cuda.synchronize()
    times = []
    for _ in range(bursts):
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - t0) / calls * 1e6)
        torch.cuda.synchronize()
    return statistics.median(times)


def issue(mode, n, calls, bursts):
    a, b, c = operands(mode, n)
    result = {"mode": mode, "n": n, "calls": calls}
    for name, call in (("matmulUs", lambda: torch.matmul(a, b)), ("matmulOutUs", lambda: torch.matmul(a, b, out=c))):
        result[name] = per_call_us(call, calls, bursts)
    return result


def main():
    config = json.loads(sys.argv[1])
    repeats = config.get("repeats", 7)
    cases = [throughput(c["mode"], c["n"], c["iters"], repeats) for c in config["cases"]]
    issue_config = config.get("issue")
    issues = [issue(mode, issue_config["n"], issue_config["calls"], issue_config["bursts"]) for mode in issue_config["modes"]] if issue_config else []
    print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "device": torch.cuda.get_device_name(), "cases": cases, "issue": issues}))


if __name__ == "__main__":
    main()
