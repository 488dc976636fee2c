"""`make bench` (``python -m benchmarks.bench``): a quick run prints the JSON the docs promise, bad
input exits 2, and the lab loop and the hand loop are the same training."""

import contextlib
import copy
import ctypes
import ctypes.util
import json
import statistics
import subprocess

import pytest
import torch

from benchmarks import bench
from benchmarks.bench import bench_main, cases, fix_malloc_thresholds, hand_loop, lab_loop, make_nets
from gan_lab.module import GANModule

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
    "threads",
    "threads_reason",
}
BUSY_KEYS = {
    "case",
    "threads_from",
    "threads",
    "threads_reason",
    "competing_processes",
    "quiet_steps_per_s",
    "busy_steps_per_s",
    "busy_quiet_ratio",
    "quiet_runs_steps_per_s",
    "busy_runs_steps_per_s",
    "summary",
}
SMALL_NETS = "small nets (intra-op threads spin on a busy machine)"


def test_quick_bench_prints_json_for_every_case(capsys):
    assert bench_main(["--quick", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["device"] == "cpu" and result["quick"] is True
    assert result["malloc"] == "as the process found it"  # a smoke run leaves the allocator alone
    names = [c["case"] for c in result["cases"]]
    assert names == [
        "toy_e1",
        "toy_e64",
        "dcgan32_ns",
        "dcgan32_wgan_gp",
        "toy_e1_busy",
        "toy_e1_busy",
        "eval",
    ]
    lab_vs_hand, busy, (evaluation,) = result["cases"][:4], result["cases"][4:6], result["cases"][6:]
    # the image metrics' case: features/s per net, and one evaluation's seconds and values
    assert [f["net"] for f in evaluation["features"]] == ["digit_classifier"]  # quick: no big weights files
    assert all(f["features_per_s"] > 0 for f in evaluation["features"])
    ev = evaluation["evaluation"]
    assert ev["total_s"] == pytest.approx(ev["fd_s"] + ev["prdc_s"], abs=0.02) and ev["fd"] > 0
    # the busy case: the lab's thread count (as toy_e1's), then torch's default
    assert [(b["threads_from"], b["threads"]) for b in busy] == [
        ("lab", lab_vs_hand[0]["threads"]),
        ("torch_default", result["torch_default_threads"]),
    ]
    for b in busy:
        assert set(b) >= BUSY_KEYS and b["competing_processes"] == 1
        assert b["quiet_steps_per_s"] > 0 and b["busy_steps_per_s"] > 0
        # the slowdown: busy time / quiet time per step
        # (steps/s are rounded to 3 decimals: on a very busy machine that is more than 1 % of a small rate)
        slack = 1e-2 + 1e-3 / min(b["quiet_steps_per_s"], b["busy_steps_per_s"])
        assert b["busy_quiet_ratio"] == pytest.approx(
            b["quiet_steps_per_s"] / b["busy_steps_per_s"], rel=slack
        )
    for c in lab_vs_hand:
        assert set(c) >= KEYS
        assert c["lab_steps_per_s"] > 0 and c["hand_steps_per_s"] > 0
        slack = 1e-2 + 1e-3 / min(c["lab_steps_per_s"], c["hand_steps_per_s"])
        assert c["ratio"] == pytest.approx(c["lab_steps_per_s"] / c["hand_steps_per_s"], rel=slack)
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
        (["--threads", "0"], "--threads must be an integer >= 1"),
        # refused even where CUDA is absent (checked first)
        (["--device", "cuda", "--cases", "toy_e1_busy"], "case 'toy_e1_busy' runs on CPU only"),
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


def test_bench_passes_channels_last_to_both_loops(capsys, monkeypatch):
    formats = {}

    def spy(loop):
        def run(case, G, D, *args, **kwargs):
            seconds = loop(case, G, D, *args, **kwargs)
            conv = next(p for p in D.parameters() if p.dim() == 4)
            formats[loop.__name__] = (
                kwargs["channels_last"],
                conv.is_contiguous(memory_format=torch.channels_last),
            )
            return seconds

        return run

    monkeypatch.setattr(bench, "lab_loop", spy(bench.lab_loop))
    monkeypatch.setattr(bench, "hand_loop", spy(bench.hand_loop))
    assert bench.bench_main(["--quick", "--cases", "dcgan32_ns", "--channels-last"]) == 0
    # both loops were told, and trained D's convolution weights in channels_last
    assert formats == {"lab_loop": (True, True), "hand_loop": (True, True)}
    result = json.loads(capsys.readouterr().out)
    assert result["channels_last"] is True and result["compile"] is False
    assert result["cases"][0]["lab_steps_per_s"] > 0 and result["cases"][0]["hand_steps_per_s"] > 0


def test_a_cuda_run_leaves_the_busy_case_out(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "a GPU")
    monkeypatch.setattr(bench, "run_case", lambda case, *a: {"case": case.name})
    import benchmarks.eval_bench as eval_bench

    monkeypatch.setattr(
        eval_bench, "run_eval_bench", lambda device, quick: {"case": "eval", "device": device}
    )
    monkeypatch.setattr(bench, "run_busy_case", lambda case, *a: [{"case": case.name}])
    result = bench.run_bench(device="cuda", quick=True)
    assert [c["case"] for c in result["cases"]] == [
        "toy_e1",
        "toy_e64",
        "dcgan32_ns",
        "dcgan32_wgan_gp",
        "eval",
    ]


def matched_streams(monkeypatch, seed: int = 11) -> None:
    """Give the lab loop the hand loop's random streams: G's noise from one generator seeded 1
    (the hand loop's ``noise``) and WGAN-GP's ε from one seeded ``seed`` (the hand loop draws ε
    from the global RNG, which the caller seeds with ``seed``). The real batches already match:
    both loops draw ``RandomImages(batch, device)`` (seed 0)."""
    noise = torch.Generator().manual_seed(1)
    points = torch.Generator().manual_seed(seed)
    monkeypatch.setattr(
        GANModule, "sample_noise", lambda self, b: torch.randn(b, self.G.z_dim, generator=noise)
    )
    monkeypatch.setattr(GANModule, "sample_uniform", lambda self, shape: torch.rand(shape, generator=points))


@pytest.mark.parametrize("name", ["dcgan32_ns", "dcgan32_wgan_gp"])
def test_hand_loop_trains_the_same_nets(monkeypatch, name):
    """The hand loop and the lab loop are the same training: from the same initial DCGAN nets and
    on the same data, noise and penalty points, 10 steps (two G steps for WGAN-GP's n_critic = 5)
    leave G and D at bit-identical weights and BatchNorm statistics (both step the for-loop Adam on
    a CPU, ``gan_lab.optim.Adam``; one Adam step moves a weight by up to lr = 2e-4, so a loop that
    trains differently, e.g. with another λ or β, is far outside). By design the two loops seed their
    noise and penalty streams differently (the lab: the per-member streams of ``gan_lab.seeding``;
    the hand loop: one generator seeded 1, ε from the global RNG), so the lab loop is given the
    hand loop's streams here (``matched_streams``)."""
    case = cases(quick=True)[name]
    G0, D0 = make_nets(case)
    nets = {loop: (copy.deepcopy(G0), copy.deepcopy(D0)) for loop in ("lab", "hand")}
    cpu, warmup, steps, seed = torch.device("cpu"), 5, 5, 11
    matched_streams(monkeypatch, seed)
    lab_loop(case, *nets["lab"], cpu, "32-true", warmup=warmup, steps=steps, threads=1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        hand_loop(case, *nets["hand"], cpu, "32-true", warmup=warmup, steps=steps, threads=1)
    for k, (player, start) in enumerate((("G", G0), ("D", D0))):
        lab, hand = nets["lab"][k], nets["hand"][k]
        lab_state, hand_state = lab.state_dict(), hand.state_dict()
        assert any(not torch.equal(p, p0) for p, p0 in zip(lab.parameters(), start.parameters()))  # trained
        assert lab_state.keys() == hand_state.keys() == start.state_dict().keys()
        for key in lab_state:
            torch.testing.assert_close(
                lab_state[key],
                hand_state[key],
                rtol=0,
                atol=0,
                msg=lambda m, key=key, player=player: f"lab vs hand loop, {player}.{key}: {m}",
            )


# ----------------------------------------------------------------------------------------------
# glibc's malloc thresholds (what the bench asks of mallopt; not what the kernel then does)
# ----------------------------------------------------------------------------------------------


class FakeLibc:
    """A libc whose ``mallopt`` records its calls and answers ``answers`` in turn (1: done)."""

    def __init__(self, *answers: int) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answers = list(answers)

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.answers.pop(0)


def fake_libc(monkeypatch, libc) -> list:
    """ctypes finds and opens ``libc`` (or raises it, if it is an exception); the paths opened."""
    opened = []

    def cdll(path):
        opened.append(path)
        if isinstance(libc, Exception):
            raise libc
        return libc

    monkeypatch.setattr(ctypes.util, "find_library", lambda name: f"lib{name}.so.6")
    monkeypatch.setattr(ctypes, "CDLL", cdll)
    return opened


def test_fix_malloc_thresholds_sets_glibcs_mmap_and_trim_thresholds(monkeypatch):
    libc = FakeLibc(1, 1)
    opened = fake_libc(monkeypatch, libc)
    described = fix_malloc_thresholds()
    assert opened == ["libc.so.6"]
    # M_MMAP_THRESHOLD (-3) at 32 MiB, glibc's cap; M_TRIM_THRESHOLD (-1) at 1 GiB
    assert libc.calls == [(-3, 32 << 20), (-1, 1 << 30)]
    assert described == "glibc mallopt: mmap threshold 32 MiB, trim threshold 1024 MiB"


@pytest.mark.parametrize(
    "libc",
    [OSError("no libc"), object(), FakeLibc(0), FakeLibc(1, 0)],
    ids=["no-libc", "no-mallopt", "mmap-refused", "trim-refused"],
)
def test_fix_malloc_thresholds_is_none_where_mallopt_is_missing_or_refuses(monkeypatch, libc):
    fake_libc(monkeypatch, libc)
    assert fix_malloc_thresholds() is None


@pytest.mark.parametrize(
    "argv, fix_malloc, threads",
    [
        ([], True, None),  # a CPU run fixes the thresholds
        (["--keep-malloc"], False, None),
        (["--quick"], False, None),  # a smoke run leaves the allocator alone
        (["--device", "cuda"], False, None),
        (["--threads", "3"], True, 3),  # the explicit thread count, for run_bench to apply per case
    ],
)
def test_bench_main_passes_fix_malloc_and_threads(monkeypatch, capsys, argv, fix_malloc, threads):
    told = {}
    monkeypatch.setattr(bench, "run_bench", lambda *a, **kw: told.update(kw) or {})
    assert bench_main(argv) == 0
    assert (told["fix_malloc"], told["threads"]) == (fix_malloc, threads)


@pytest.mark.parametrize(
    "fix_malloc, fixed, reported",
    [
        (True, "glibc mallopt: fixed", "glibc mallopt: fixed"),
        (True, None, "as the process found it"),  # not glibc, or refused
        (False, "glibc mallopt: fixed", "as the process found it"),  # not even asked
    ],
)
def test_run_bench_reports_the_malloc_thresholds_it_fixed(monkeypatch, fix_malloc, fixed, reported):
    calls = []
    monkeypatch.setattr(bench, "fix_malloc_thresholds", lambda: calls.append(1) or fixed)
    monkeypatch.setattr(bench, "run_case", lambda case, *a: {"case": case.name})
    result = bench.run_bench(names=["toy_e1"], quick=True, fix_malloc=fix_malloc)
    assert result["malloc"] == reported and len(calls) == int(fix_malloc)


# ----------------------------------------------------------------------------------------------
# Threads: each case under the lab's choice for its nets
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def torch_at_3_threads(monkeypatch):
    """torch at 3 intra-op threads (not the toy nets' 1), OMP_NUM_THREADS unset; both put back."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


def recording_loops(monkeypatch) -> list[tuple[str, str, int, int | None]]:
    """Both loops replaced by stubs recording (case, loop, torch's thread count, threads told)."""
    calls = []

    def stub(name):
        def loop(case, G, D, device, precision, warmup, steps, **kw):
            calls.append((case.name, name, torch.get_num_threads(), kw.get("threads")))
            return 0.5

        return loop

    monkeypatch.setattr(bench, "lab_loop", stub("lab"))
    monkeypatch.setattr(bench, "hand_loop", stub("hand"))
    return calls


def test_both_loops_of_a_case_run_with_the_labs_thread_count(torch_at_3_threads, monkeypatch):
    from gan_lab.threads import TORCH_DEFAULT_THREADS

    calls = recording_loops(monkeypatch)
    toy, dcgan = bench.run_bench(names=["toy_e1", "dcgan32_ns"], quick=True, repeats=2)["cases"]
    assert (toy["threads"], toy["threads_reason"]) == (1, SMALL_NETS)  # the toy nets declare 1
    assert (dcgan["threads"], dcgan["threads_reason"]) == (TORCH_DEFAULT_THREADS, "torch's default")
    for case, threads in (("toy_e1", 1), ("dcgan32_ns", TORCH_DEFAULT_THREADS)):
        runs = [(loop, n, told) for c, loop, n, told in calls if c == case]
        assert len(runs) == 6 and {(n, told) for _, n, told in runs} == {(threads, threads)}
    assert torch.get_num_threads() == 3  # put back after each case


def test_threads_setting_is_the_explicit_count(torch_at_3_threads, monkeypatch):
    calls = recording_loops(monkeypatch)
    (toy,) = bench.run_bench(names=["toy_e1"], quick=True, threads=2)["cases"]
    assert (toy["threads"], toy["threads_reason"]) == (2, "set by --threads")
    assert {n for _, _, n, _ in calls} == {2}


def test_the_lab_loop_tells_the_module_the_benchs_thread_count(torch_at_3_threads):
    """GANModule would pick 1 thread for the toy nets; told 2, the timed window runs under 2 (the
    loop raises otherwise, see below)."""
    case = cases(quick=True)["toy_e1"]
    lab_loop(case, *make_nets(case), torch.device("cpu"), "32-true", warmup=1, steps=1, threads=2)


@pytest.mark.parametrize("loop", ["lab", "hand"])
def test_a_loop_refuses_to_time_under_another_thread_count_than_the_benchs(
    torch_at_3_threads, monkeypatch, loop
):
    import gan_lab.threads

    # a module that leaves the count alone: torch stays at 3, the bench asked for 2
    monkeypatch.setattr(gan_lab.threads, "apply_cpu_threads", lambda choice: choice)
    case = cases(quick=True)["toy_e1"]
    with pytest.raises(RuntimeError, match=r"with \[?3\]? threads, not (the bench's )?2"):
        (lab_loop if loop == "lab" else hand_loop)(
            case, *make_nets(case), torch.device("cpu"), "32-true", warmup=1, steps=1, threads=2
        )


# ----------------------------------------------------------------------------------------------
# toy_e1_busy: the lab loop quiet and with one competing process
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_the_competing_process_is_killed_when_the_timed_loop_raises(monkeypatch, error):
    started = []
    popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        started.append(popen(*args, **kwargs))
        return started[-1]

    spinning = []

    def loop(case, G, D, *args, **kwargs):
        if started and started[-1].poll() is None:  # the busy run, the competing process up
            spinning.append(started[-1].pid)
            raise error("stopped")
        return 0.5

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    monkeypatch.setattr(bench, "lab_loop", loop)
    threads = torch.get_num_threads()
    try:
        with pytest.raises(error):
            bench.run_bench(names=["toy_e1_busy"], quick=True, repeats=1)
        assert len(started) == 1 and spinning == [started[0].pid]  # started, and running in the loop
        assert started[0].poll() is not None  # killed (and reaped)
        assert torch.get_num_threads() == threads  # put back
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_busy_case_reports_medians_and_the_slowdown_under_the_labs_and_torchs_threads(
    torch_at_3_threads, monkeypatch
):
    """The stub loop: quiet runs at 50, 100, 110 steps/s (the untimed first run at 1); busy runs
    at the same over (1 + threads). Medians 100 and 100 / (1 + threads): slowdown 1 + threads."""
    monkeypatch.setattr(bench, "TORCH_DEFAULT_THREADS", 4)
    state = {"busy": False}
    order: dict[int, list[bool]] = {}

    @contextlib.contextmanager
    def competing_process():
        state["busy"] = True
        try:
            yield
        finally:
            state["busy"] = False

    def loop(case, G, D, device, precision, warmup, steps, threads=None, **kw):
        n = torch.get_num_threads()
        assert threads == n
        runs = order.setdefault(n, [])
        k = runs.count(state["busy"]) - (not state["busy"])  # -1: the untimed first quiet run
        runs.append(state["busy"])
        speed = 1.0 if k < 0 else (50.0, 100.0, 110.0)[k] / ((1 + n) if state["busy"] else 1)
        return steps / speed

    monkeypatch.setattr(bench, "competing_process", competing_process)
    monkeypatch.setattr(bench, "lab_loop", loop)
    lab, torch_default = bench.run_bench(names=["toy_e1_busy"], quick=True, repeats=3)["cases"]
    # the lab's count for toy_e1's nets, then torch's default; each in ABBA order after an untimed run
    assert order == {n: [False, False, True, True, False, False, True] for n in (1, 4)}
    assert (lab["threads_from"], lab["threads"], lab["threads_reason"]) == ("lab", 1, SMALL_NETS)
    assert (torch_default["threads_from"], torch_default["threads"]) == ("torch_default", 4)
    for entry, n in ((lab, 1), (torch_default, 4)):
        assert entry["quiet_runs_steps_per_s"] == [50.0, 100.0, 110.0]
        assert entry["quiet_steps_per_s"] == statistics.median(entry["quiet_runs_steps_per_s"]) == 100.0
        assert entry["busy_steps_per_s"] == pytest.approx(statistics.median(entry["busy_runs_steps_per_s"]))
        assert entry["busy_steps_per_s"] == pytest.approx(100.0 / (1 + n), abs=1e-3)
        # quiet steps/s over busy steps/s: busy time over quiet time, the slowdown (>= 1 here)
        assert entry["busy_quiet_ratio"] == pytest.approx(1 + n)
        assert entry["busy_quiet_ratio"] == pytest.approx(
            entry["quiet_steps_per_s"] / entry["busy_steps_per_s"]
        )
    assert lab["summary"].startswith("with 1 thread (the lab's choice): a step takes 2.00x as long")
    assert torch_default["summary"].startswith("with 4 threads (torch's default): a step takes 5.00x")
    assert torch.get_num_threads() == 3  # put back


@pytest.mark.parametrize("name", ["toy_ens_e64", "toy_e1"])
def test_toy_hand_loop_draws_the_labs_streams_and_trains_the_same_nets(name):
    """Toy cases: both loops draw the data and G's noise from the same counter-based streams
    (``gan_lab.seeding``, seed 0) and step the same for-loop Adam (``gan_lab.optim.Adam`` on a CPU),
    so without any patching 6 steps leave bit-identical weights; a hand loop with other streams (the
    old torch.Generator ones) would be far outside."""
    case = cases(quick=True)[name]
    G0, D0 = make_nets(case)
    nets = {loop: (copy.deepcopy(G0), copy.deepcopy(D0)) for loop in ("lab", "hand")}
    cpu = torch.device("cpu")
    lab_loop(case, *nets["lab"], cpu, "32-true", warmup=3, steps=3, threads=1)
    hand_loop(case, *nets["hand"], cpu, "32-true", warmup=3, steps=3, threads=1)
    for lab, hand, start in zip(nets["lab"], nets["hand"], (G0, D0)):
        assert any(not torch.equal(p, p0) for p, p0 in zip(lab.parameters(), start.parameters()))
        for key, value in lab.state_dict().items():
            assert torch.equal(value, hand.state_dict()[key]), key
