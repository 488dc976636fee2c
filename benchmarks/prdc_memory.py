"""The memory of :func:`gan_lab.metrics.prdc.prdc` (exact chunked k-NN): one run in a fresh Python
process, on random Gaussian features, its peak resident set (and on CUDA its peak allocation).

Run from the repository root (``benchmarks`` is not installed with ``gan_lab``); minutes at the
default 50,000 × 50,000:

    python -m benchmarks.prdc_memory
    python -m benchmarks.prdc_memory --n-real 10000 --n-fake 10000 --d 2048 --device cuda
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from gan_lab.metrics.prdc import DEFAULT_CHUNK

_MEASURE = """
import json, resource, sys, time, torch
from gan_lab.metrics.prdc import prdc
n_real, n_fake, d, chunk, seed, device = json.loads(sys.argv[1])
g = torch.Generator().manual_seed(seed)
real = torch.randn(n_real, d, generator=g).to(device)
fake = (torch.randn(n_fake, d, generator=g) + 0.1).to(device)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if device.startswith("cuda"):
    torch.cuda.synchronize(); base_gpu = torch.cuda.max_memory_allocated()
start = time.perf_counter()
out = prdc(real, fake, chunk=chunk)
if device.startswith("cuda"):
    torch.cuda.synchronize()
seconds = time.perf_counter() - start
result = dict(
    seconds=seconds,
    rss_before_mib=before / 1024,
    rss_peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    inputs_mib=(real.numel() + fake.numel()) * 4 / 2**20,
    **{k: v.item() for k, v in out.items()},
)
if device.startswith("cuda"):
    result["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    result["gpu_inputs_mib"] = base_gpu / 2**20
print(json.dumps(result))
"""


def measure_prdc_memory(
    n_real: int = 50_000,
    n_fake: int = 50_000,
    d: int = 64,
    chunk: int = DEFAULT_CHUNK,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, float]:
    """Run :func:`~gan_lab.metrics.prdc.prdc` on random Gaussian features in a fresh Python process
    and report its memory.

    The peak resident set (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which sees torch's
    allocations, unlike ``tracemalloc``) is read before and after the computation, so
    ``rss_peak_mib − rss_before_mib`` bounds the work memory above the inputs; on CUDA also
    ``torch.cuda.max_memory_allocated``. Not a test: it takes minutes at 50,000 × 50,000.

    Returns:
        ``seconds``, ``rss_before_mib``, ``rss_peak_mib``, ``inputs_mib`` (the float32 features),
        the four metric values, and on CUDA ``gpu_peak_mib`` / ``gpu_inputs_mib``.
    """
    args = json.dumps([n_real, n_fake, d, chunk, seed, device])
    done = subprocess.run([sys.executable, "-c", _MEASURE, args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.prdc_memory",
        description="The memory of gan_lab.metrics.prdc.prdc, in a fresh process, as JSON.",
    )
    parser.add_argument("--n-real", type=int, default=50_000)
    parser.add_argument("--n-fake", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=64, help="feature dimension")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="rows per chunk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    result = measure_prdc_memory(args.n_real, args.n_fake, args.d, args.chunk, args.seed, args.device)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
