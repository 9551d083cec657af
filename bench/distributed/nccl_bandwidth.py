#!/usr/bin/env python3
"""NCCL's raw reduce-scatter and all-gather bandwidth between the GPUs of this host through
PyTorch (one process per GPU), for the message sizes aios's ZeRO-1 buckets use: what the
2-GPU scaling rows in docs/benchmarks.md can at best expect. Run with NCCL_DEBUG=INFO to see the
transport NCCL picked. Usage: bench/distributed/nccl_bandwidth.py [GPUS=2]"""
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank, world):
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method="tcp://127.0.0.1:29533", rank=rank, world_size=world)
    for mib in (25, 100, 400):
        n = mib * 2**20 // 4 // world * world
        full = torch.ones(n, device="cuda")
        part = torch.empty(n // world, device="cuda")
        for name, op in (("reduce_scatter", lambda: dist.reduce_scatter_tensor(part, full)),
                         ("all_gather", lambda: dist.all_gather_into_tensor(full, part))):
            for _ in range(3):
                op()
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(10):
                op()
            torch.cuda.synchronize()
            seconds = (time.perf_counter() - start) / 10
            bus = n * 4 * (world - 1) / world / seconds / 1e9  # NCCL's bus bandwidth for these ops
            if rank == 0:
                print(f"{name:15s} {mib:4d} MiB (fp32, whole buffer): {seconds * 1e3:7.3f} ms, bus bandwidth {bus:6.1f} GB/s",
                      flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    world = int(sys.argv[1]) if len(sys.argv) > 1 else torch.cuda.device_count()
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # this workplace's rule for shared hosts
    mp.spawn(worker, args=(world,), nprocs=world)
