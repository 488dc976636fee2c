"""`gan-lab bench` (a quick run prints the JSON the docs promise; bad input exits 2) and the
DCGAN-32 nets it times."""

import json
import resource
import subprocess
import sys
import textwrap

import pytest
import torch

from gan_lab.bench import bench_main, cases, hand_loop, make_nets
from gan_lab.cli import main
from gan_lab.errors import ConfigError
from gan_lab.module import GANModule
from gan_lab.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_lab.regularizers.gradient_penalty import per_sample_grad_norm

KEYS = {
    "case",
    "lab_steps_per_s",
    "hand_steps_per_s",
    "lab_samples_per_s",
    "hand_samples_per_s",
    "ratio",
    "lab_member_steps_per_s",
    "hand_member_steps_per_s",
    "lab_runs_steps_per_s",
    "hand_runs_steps_per_s",
}


def test_quick_bench_prints_json_for_every_case(capsys):
    assert main(["bench", "--quick", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["device"] == "cpu" and result["quick"] is True
    assert result["malloc"] == "as the process found it"  # a smoke run leaves the allocator alone
    assert [c["case"] for c in result["cases"]] == ["toy_e1", "toy_e64", "dcgan32_ns", "dcgan32_wgan_gp"]
    for c in result["cases"]:
        assert set(c) >= KEYS
        assert c["lab_steps_per_s"] > 0 and c["hand_steps_per_s"] > 0
        assert c["ratio"] == pytest.approx(c["lab_steps_per_s"] / c["hand_steps_per_s"], rel=1e-2)
        # whole D/G cycles timed, the first G step warmed up
        assert c["steps"] % c["n_critic"] == 0 and c["warmup"] >= c["n_critic"]
        per_step = c["batch"] * (c["members"] or 1)
        assert c["lab_samples_per_s"] == pytest.approx(c["lab_steps_per_s"] * per_step, rel=1e-2, abs=0.1)
        if c["members"] is None:  # DCGAN: no ensemble
            assert c["lab_member_steps_per_s"] is None
        else:
            assert c["lab_member_steps_per_s"] == pytest.approx(c["lab_steps_per_s"] * c["members"], rel=1e-2)


def test_batch_and_members_override_the_cases(capsys):
    argv = ["--quick", "--cases", "toy_e1", "dcgan32_ns", "--batch", "6", "--members", "3"]
    assert bench_main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    toy, dcgan = result["cases"]
    assert (toy["batch"], toy["members"]) == (6, 3)
    assert (dcgan["batch"], dcgan["members"]) == (6, None)  # members: toy ensembles only
    assert toy["lab_samples_per_s"] == pytest.approx(toy["lab_steps_per_s"] * 18, rel=1e-2)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--precision", "8-true"], "unknown precision"),
        (["--cases", "toy_e2"], "unknown case 'toy_e2'"),
        (["--precision", "16-mixed"], "16-mixed needs CUDA"),
        (["--members", "0"], "--members must be an integer >= 1"),
        (["--batch", "-2"], "--batch must be an integer >= 1"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert bench_main(["--quick", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_cuda_refused_without_cuda(capsys):
    assert bench_main(["--quick", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_hand_loop_trains_the_same_nets():
    case = cases(quick=True)["dcgan32_wgan_gp"]
    G, D = make_nets(case)
    before = [p.detach().clone() for p in D.parameters()]
    seconds = hand_loop(case, G, D, torch.device("cpu"), "32-true", warmup=1, steps=1)
    assert seconds > 0
    assert any(not torch.equal(a, p) for a, p in zip(before, D.parameters()))


# ----------------------------------------------------------------------------------------------
# DCGAN-32
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes_and_ranges(channels):
    G = DCGANGenerator(z_dim=16, ngf=8, out_channels=channels)
    D = DCGANDiscriminator(in_channels=channels, ndf=8)
    x = G(torch.randn(5, 16))
    assert x.shape == (5, channels, 32, 32) and x.abs().max() <= 1
    assert D(x).shape == (5,)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in D.modules())


def test_dcgan_discriminator_is_per_sample_for_gradient_penalties():
    """No BatchNorm in D: sample i's input gradient does not depend on the other samples."""
    D = DCGANDiscriminator(ndf=4)
    x = torch.randn(4, 3, 32, 32)
    together = per_sample_grad_norm(D, x)
    alone = torch.cat([per_sample_grad_norm(D, x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone)


def test_dcgan_init_is_seeded_and_small():
    a, b = DCGANGenerator(ngf=4, seed=1), DCGANGenerator(ngf=4, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    conv = DCGANDiscriminator(ndf=16).net[2].weight
    assert conv.std().item() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("kw", [{"ngf": 0}, {"z_dim": -1}, {"out_channels": 1.5}])
def test_dcgan_bad_sizes_are_refused(kw):
    with pytest.raises(ConfigError, match="DCGAN"):
        DCGANGenerator(**kw)


def test_dcgan_discriminator_refuses_wrong_channels():
    with pytest.raises(ConfigError, match=r"expects \(B, 3, 32, 32\)"):
        DCGANDiscriminator()(torch.randn(2, 1, 32, 32))


def test_dcgan_trains_in_the_module():
    module = GANModule(DCGANGenerator(z_dim=8, ngf=4), DCGANDiscriminator(ndf=4), regularizers=["r1"])
    assert module.members is None and module.batch_ndim == 1


# Four 24 MiB blocks taken and freed, round after round, in a fresh process. glibc's adaptive
# thresholds cap at 32 MiB (mmap) and 64 MiB (trim), so whatever the process did before, each round's
# 96 MiB is either mmapped and unmapped, or freed into a heap top that is trimmed: faulted back in
# every round. Fixed thresholds keep the blocks in the heap.
_ROUNDS = textwrap.dedent(
    """
    import ctypes, ctypes.util, resource, sys
    from gan_lab.bench import fix_malloc_thresholds
    print(fix_malloc_thresholds() if sys.argv[1] == "fix" else "adaptive")
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    size = 24 << 20
    def one_round():
        blocks = [libc.malloc(size) for _ in range(4)]
        for b in blocks:
            libc.memset(b, 1, size)  # touch every page
        for b in reversed(blocks):
            libc.free(b)
    one_round(), one_round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        one_round()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_fixed_malloc_thresholds_stop_freed_blocks_being_faulted_back_in():
    def faults_per_round(mode: str) -> tuple[str, float]:
        out = subprocess.run(
            [sys.executable, "-c", _ROUNDS, mode], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        return out[0], float(out[1])

    pages = 4 * (24 << 20) // resource.getpagesize()
    assert faults_per_round("adaptive") == ("adaptive", pytest.approx(pages, rel=0.05))
    described, faults = faults_per_round("fix")
    assert described == "glibc mallopt: mmap threshold 32 MiB, trim threshold 1024 MiB"
    assert faults < pages / 100  # 0 here
