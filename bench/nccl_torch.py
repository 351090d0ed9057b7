#!/usr/bin/env python3
"""The PyTorch anchor of bench/nccl.bench.ts: torch.distributed.all_reduce with the NCCL backend,
one process per GPU (torch.multiprocessing.spawn, a TCP store on 127.0.0.1), timed the way the
TypeScript side times gpuffi: after a barrier, the host clock over `iters` back-to-back in-place
sum all-reduces of the first `count` elements of a zeroed buffer, the stream synchronized at the
end; the slowest rank's time per all-reduce; the median of `repeats` after `warmup` all-reduces.

  NCCL_NVLS_ENABLE=0 python3 bench/nccl_torch.py '{"ranks": 2, "warmup": 5, "repeats": 5,
      "cases": [{"dtype": "bfloat16", "bytes": 1048576, "count": 524288, "iters": 256}]}'

Prints `#torch {json}` (rank 0) on stdout.
"""
import json
import os
import socket
import statistics
import sys
import time

# NVLink SHARP / multicast stays off on the shared multi-GPU machines; NCCL reads this when it
# initializes, which happens after torch is imported, in the spawned processes that inherit it.
os.environ["NCCL_NVLS_ENABLE"] = "0"

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seconds_per_all_reduce(view, iters, rank):
    dist.barrier(device_ids=[rank])
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(view)
    torch.cuda.synchronize()
    slowest = torch.tensor([(time.perf_counter() - start) / iters], dtype=torch.float64, device="cuda")
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    return slowest.item()


def worker(rank, ranks, port, config):
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=ranks)
    cases = config["cases"]
    largest = max(case["bytes"] for case in cases)
    timings = []
    for name, dtype in DTYPES.items():
        mine = [case for case in cases if case["dtype"] == name]
        if not mine:
            continue
        buffer = torch.zeros(largest // torch.tensor([], dtype=dtype).element_size(), dtype=dtype, device="cuda")
        for case in mine:
            view = buffer[: case["count"]]
            for _ in range(config["warmup"]):
                dist.all_reduce(view)
            times = [seconds_per_all_reduce(view, case["iters"], rank) for _ in range(config["repeats"])]
            timings.append({**case, "seconds": statistics.median(times)})
        del buffer
    if rank == 0:
        version = torch.cuda.nccl.version()  # a tuple in recent PyTorch, an int (e.g. 22005) before
        nccl = ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
        result = {"torch": torch.__version__, "cuda": torch.version.cuda, "nccl": nccl, "ranks": ranks, "timings": timings}
        print("#torch " + json.dumps(result), flush=True)
    dist.destroy_process_group()


def main():
    config = json.loads(sys.argv[1])
    ranks = config["ranks"]
    if torch.cuda.device_count() < ranks:
        sys.exit(f"nccl_torch.py: {ranks} ranks asked for, {torch.cuda.device_count()} GPUs visible")
    mp.spawn(worker, args=(ranks, free_port(), config), nprocs=ranks, join=True)


if __name__ == "__main__":
    main()
