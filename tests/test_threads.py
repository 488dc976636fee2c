"""The CPU thread choice (gan_lab.threads): what each net declares, and what overrides it."""

from gan_lab.nets import ToyDiscriminator, ToyGenerator
from gan_lab.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_lab.threads import TORCH_DEFAULT_THREADS, choose_cpu_threads


def test_toy_nets_take_one_thread_and_conv_nets_keep_torch_default():
    toy = [ToyGenerator(members=2, hidden=8, layers=1), ToyDiscriminator(members=2, hidden=8, layers=1)]
    assert choose_cpu_threads(toy, environ={}).threads == 1
    conv = [DCGANGenerator(z_dim=8, ngf=4), DCGANDiscriminator(ndf=4)]
    assert choose_cpu_threads(conv, environ={}) == (TORCH_DEFAULT_THREADS, "torch's default")


def test_precedence_setting_then_omp_num_threads_then_the_nets():
    toy = [ToyGenerator(members=1, hidden=8, layers=1)]
    assert choose_cpu_threads(toy, environ={"OMP_NUM_THREADS": "3"}).threads == 3
    assert choose_cpu_threads(toy, setting=2, environ={"OMP_NUM_THREADS": "3"}).threads == 2
    assert choose_cpu_threads(toy, environ={"OMP_NUM_THREADS": "junk"}).threads == 1  # unusable: ignored
