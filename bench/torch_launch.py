#!/usr/bin/env python3
"""The PyTorch anchor of bench/kernels.bench.ts: the host cost of PyTorch launching its own
smallest kernels, timed like the TypeScript side times gpuffi's launches.

  python3 bench/torch_launch.py '{"bursts": 201, "calls": 100}'

- x.fill_(1.0) and x.add_(1.0) on a one-element float32 CUDA tensor (one tiny elementwise kernel
  each, through the dispatcher and TensorIterator), and y = x + 1 (allocates its result through
  the caching allocator): host µs per call over bursts of `calls`, the GPU drained between
  bursts, the median over `bursts`.
Prints one JSON object on stdout.
"""
import json
import sys

import torch

from torch_matmul import per_call_us


def main():
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    bursts, calls = config.get("bursts", 201), config.get("calls", 100)
    x = torch.zeros(1, device="cuda")
    result = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(),
        "fillUs": per_call_us(lambda: x.fill_(1.0), calls, bursts, warmup=1000),
        "addUs": per_call_us(lambda: x.add_(1.0), calls, bursts, warmup=1000),
        "addOutOfPlaceUs": per_call_us(lambda: x + 1, calls, bursts, warmup=1000),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
