"""Several processes under `torchrun`: process group, sharded data, one writer.

Every stage runs unchanged as one process. Started by torchrun (WORLD_SIZE > 1), `setup` joins the
process group (NCCL on GPUs, gloo on the CPU) and gives each process its own GPU; then
  * training wraps the detector and its loss in DistributedDataParallel (`distribute_loss`) and deals
    each process its share of every batch (`ShardSampler`), so the processes together see exactly the
    batches of one process (train.batch_size is the global batch);
  * inference deals the videos round-robin and merges the results (`gather_results`);
  * only the main process (rank 0) writes files and prints.

  torchrun --standalone --nproc_per_node 4 train_supervised.py --config configs/default.yaml --out OUT
"""
import builtins
import os

import torch
import torch.distributed as dist


def world_size():
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank():
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main():
    return rank() == 0


def setup(device):
    """Join torchrun's process group when there is one; returns this process's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    if device.type == "cuda":  # one GPU per process
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if not is_main():
        _silence_print()
    return device


def cleanup():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _silence_print():
    """Only rank 0 talks (as DINO's setup_for_distributed); errors still reach stderr from every rank."""
    real = builtins.print

    def quiet(*args, **kwargs):
        if kwargs.pop("force", False):
            real(*args, **kwargs)
    builtins.print = quiet


# ---------------------------------------------------------------- training

class ShardSampler(torch.utils.data.Sampler):
    """One process's share of the single-process shuffle of an epoch.

    The permutation is the one a shuffling DataLoader with a generator seeded `seed` draws (it takes
    one number for its workers first), so one process trains on exactly the order it always did.
    Process r takes positions r, r + W, r + 2W, ...: with per-process batches of B / W, global batch k
    is positions kB .. kB + B - 1 of the permutation, as in one process. A length that W does not
    divide is padded by wrapping around (the last batch then repeats a video or two).
    """

    def __init__(self, n, seed, rank_=None, world=None):
        self.n, self.seed = n, seed
        self.rank = rank() if rank_ is None else rank_
        self.world = world_size() if world is None else world

    def __len__(self):
        return -(-self.n // self.world)

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed)
        torch.empty((), dtype=torch.int64).random_(generator=gen)
        order = torch.randperm(self.n, generator=gen).tolist()
        order += order[:len(self) * self.world - self.n]
        return iter(order[self.rank::self.world])


def per_process_batch(batch_size):
    world = world_size()
    if batch_size % world:
        raise SystemExit(f"error: the batch size {batch_size} is not divisible by the {world} processes; "
                         "train.batch_size (acp.batch_size) is the global batch")
    return batch_size // world


def _sum_over_processes(values, device):
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_reduce_sum(value, device):
    """The sum of a number over the processes (itself in one process)."""
    return value if world_size() == 1 else _sum_over_processes([value], device)[0]


def average_stats(stats, device):
    """Mean of each logged number over the processes, so the log reads like one process's."""
    if world_size() == 1:
        return stats
    keys = sorted(stats)
    return {k: v / world_size() for k, v in zip(keys, _sum_over_processes([stats[k] for k in keys], device))}


class _ModelWithLoss(torch.nn.Module):
    """DistributedDataParallel syncs the gradients of what runs inside its forward: the whole loss,
    heads, ICD and ACP projection included, not only the detector's forward."""

    def __init__(self, model, compute_loss):
        super().__init__()
        self.model, self.compute_loss = model, compute_loss

    def forward(self, batch):
        return self.compute_loss(self.model, batch)


def distribute_loss(model, compute_loss, device, unused_parameters=False):
    """compute_loss(model, batch) itself in one process; under torchrun the same through DDP.
    unused_parameters: some trainable weights get no gradient (the ACP projection with acp.mode none)."""
    if world_size() == 1:
        return compute_loss
    ddp = torch.nn.parallel.DistributedDataParallel(
        _ModelWithLoss(model, compute_loss), device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=unused_parameters)
    return lambda _model, batch: ddp(batch)


# ---------------------------------------------------------------- inference

def shard(items):
    """This process's share of a list (round-robin)."""
    return items[rank()::world_size()]


def gather_results(results, order):
    """The per-process {video_id: result} dicts merged in `order` on the main process ({} elsewhere:
    only rank 0 goes on to write)."""
    if world_size() == 1:
        return results
    parts = [None] * world_size() if is_main() else None
    dist.gather_object(results, parts, dst=0)
    if not is_main():
        return {}
    merged = {k: v for part in parts for k, v in part.items()}
    return {vid: merged[vid] for vid in order if vid in merged}
