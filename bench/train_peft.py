#!/usr/bin/env python3
"""The PyTorch + PEFT anchor of bench/train.bench.ts (issue 14): LoRA training throughput.

  python3 bench/train_peft.py [--modes bf16,tf32,fp32] [--steps 10] [--warmup 3] [--out FILE]
  python3 bench/train_peft.py --cpu [--threads 16] [--steps 10] [--out FILE]

GPU (default): a random-weight TinyLlama-1.1B-shaped LlamaForCausalLM (hidden 2048, 22 layers,
32 heads, 4 KV heads, intermediate 5632, vocab 32000), eager attention, no gradient
checkpointing; PEFT LoRA r16 alpha32 (dropout 0) on q, k, v, o, gate, up, down; AdamW (PyTorch
defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01, foreach) over the LoRA
parameters; batch 4 x 512 random tokens, labels = input_ids (transformers shifts them).
Modes:
  bf16  base model in bfloat16; LoRA weights as PEFT makes them (autocast_adapter_dtype: float32)
  fp16  the same in float16 (no loss scaling: random weights, timing only)
  tf32  float32 with TF32 matmuls (allow_tf32, float32_matmul_precision "high")
  fp32  float32, TF32 off
Each mode: `warmup` steps, then `steps` steps timed between two torch.cuda.synchronize() (the
losses stay on the GPU until the end, so the loop never waits on the host); peak memory is
torch.cuda.max_memory_allocated() over warm-up and timed steps, model and optimizer state
included.

--cpu: the CPU comparison on a small model (hidden 256, 4 layers, 8 heads, 4 KV heads,
intermediate 688, vocab 4096), batch 2 x 128, float32, torch.set_num_threads(--threads);
peak memory is the process's maximum resident set.

Prints one JSON line per mode: {mode, tokens_per_s, step_ms, peak_gib, ...}; --out writes the
same lines to FILE.
"""
import argparse
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time

import torch
import transformers
import peft
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

GPU_SHAPE = dict(hidden=2048, layers=22, heads=32, kv_heads=4, ff=5632, vocab=32000, batch=4, seq=512)
CPU_SHAPE = dict(hidden=256, layers=4, heads=8, kv_heads=4, ff=688, vocab=4096, batch=2, seq=128)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "tf32": torch.float32, "fp32": torch.float32, "cpu-fp32": torch.float32}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default="bf16,tf32,fp32", help="comma-separated: bf16, fp16, tf32, fp32 (GPU only)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default %(default)s)")
    parser.add_argument("--cpu", action="store_true", help="the small CPU model instead, float32")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads for --cpu (default: all cores)")
    parser.add_argument("--batch", type=int, help="sequences per step (default 4 on the GPU, 2 on the CPU)")
    parser.add_argument("--seq", type=int, help="tokens per sequence (default 512 on the GPU, 128 on the CPU)")
    parser.add_argument("--layers", type=int, help="override the layer count")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the JSON lines to this file")
    return parser.parse_args()


def set_matmul_mode(mode):
    tf32 = mode == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def build_model(shape, dtype, device):
    config = LlamaConfig(
        hidden_size=shape["hidden"],
        intermediate_size=shape["ff"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        vocab_size=shape["vocab"],
        max_position_embeddings=max(2048, shape["seq"]),
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        hidden_act="silu",
        attention_bias=False,
        use_cache=False,
        attn_implementation="eager",
    )
    # Random weights (transformers' own init), made on the device, then cast.
    with torch.device(device):
        model = LlamaForCausalLM(config)
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    attn = getattr(model.config, "_attn_implementation", None)
    if attn != "eager":
        raise RuntimeError("attention implementation is %r, not eager" % (attn,))
    if getattr(model, "is_gradient_checkpointing", False):
        raise RuntimeError("gradient checkpointing is on")
    return model.to(dtype=dtype)


def run_mode(mode, args, shape, device):
    dtype = DTYPES[mode]
    if device.type == "cuda":
        set_matmul_mode(mode)
    torch.manual_seed(args.seed)
    model = build_model(shape, dtype, device)
    lora = LoraConfig(r=args.rank, lora_alpha=args.alpha, target_modules=TARGETS, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    total = sum(p.numel() for p in model.parameters())
    lora_dtypes = sorted({str(p.dtype).replace("torch.", "") for p in params})
    optimizer = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    batch, seq = shape["batch"], shape["seq"]
    generator = torch.Generator(device="cpu").manual_seed(args.seed + 1)
    data = [torch.randint(0, shape["vocab"], (batch, seq), generator=generator).to(device) for _ in range(args.warmup + args.steps)]

    def step(ids):
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        return loss.detach()

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    losses = [step(ids) for ids in data[: args.warmup]]

    cuda = device.type == "cuda"
    if cuda:
        events = [torch.cuda.Event(enable_timing=True) for _ in range(args.steps + 1)]
        torch.cuda.synchronize()
    step_times = []
    start = time.perf_counter()
    if cuda:
        events[0].record()
    for i, ids in enumerate(data[args.warmup:]):
        t0 = time.perf_counter()
        losses.append(step(ids))
        if cuda:
            events[i + 1].record()
        else:
            step_times.append((time.perf_counter() - t0) * 1e3)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if cuda:
        step_times = [events[i].elapsed_time(events[i + 1]) for i in range(args.steps)]
    values = [l.item() for l in losses]
    if not all(v == v and abs(v) != float("inf") for v in values):
        raise RuntimeError("%s: non-finite loss %s" % (mode, values))

    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**30
        peak_reserved = torch.cuda.max_memory_reserved() / 2**30
    else:
        # ru_maxrss is KiB on Linux.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        peak_reserved = None
    tokens = batch * seq
    result = {
        "bench": "train_peft",
        "mode": mode,
        "tokens_per_s": tokens * args.steps / seconds,
        "step_ms": seconds * 1e3 / args.steps,
        "step_ms_median": statistics.median(step_times),
        "peak_gib": peak,
        "peak_reserved_gib": peak_reserved,
        "tokens_per_step": tokens,
        "batch": batch,
        "seq": seq,
        "steps": args.steps,
        "warmup": args.warmup,
        "shape": shape,
        "rank": args.rank,
        "alpha": args.alpha,
        "targets": TARGETS,
        "lora_dtype": lora_dtypes,
        "trainable_params": trainable,
        "params": total,
        "loss_first": values[0],
        "loss_last": values[-1],
        "attn": "eager",
        "gradient_checkpointing": False,
        "optimizer": "AdamW lr 1e-3 betas (0.9, 0.999) eps 1e-8 wd 0.01 (foreach default)",
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
    }
    del model, optimizer, params, data, losses
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return result


def main():
    args = parse_args()
    if args.cpu:
        shape = dict(CPU_SHAPE)
        modes = ["cpu-fp32"]
        device = torch.device("cpu")
        torch.set_num_threads(args.threads)
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: use --cpu for the CPU comparison")
        shape = dict(GPU_SHAPE)
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        for m in modes:
            if m not in DTYPES or m == "cpu-fp32":
                raise SystemExit("unknown mode %r (choose from bf16, fp16, tf32, fp32)" % m)
        device = torch.device("cuda")
    for key in ("batch", "seq", "layers"):
        if getattr(args, key) is not None:
            shape[key] = getattr(args, key)
    if args.steps < 1 or args.warmup < 0:
        raise SystemExit("--steps must be ≥ 1 and --warmup ≥ 0")

    out = open(args.out, "w") if args.out else None
    try:
        for mode in modes:
            line = json.dumps(run_mode(mode, args, shape, device))
            print(line, flush=True)
            if out:
                out.write(line + "\n")
                out.flush()
    finally:
        if out:
            out.close()


if __name__ == "__main__":
    main()
