"""Per-member random streams: a saved state resumes the same draws; a state of another device
type (or another member count) is refused with a warning, and fresh streams from the seeds run."""

import pytest
import torch

from gan_lab.seeding import MemberStreams, member_generators, randn_members


def draws(streams: MemberStreams) -> torch.Tensor:
    return randn_members(streams.generators("cpu"), (4,), "cpu")  # (E, 4)


def test_a_loaded_state_continues_the_same_draws():
    uninterrupted = MemberStreams([5, 6, 7])
    draws(uninterrupted)
    saved = uninterrupted.state()
    expected = draws(uninterrupted)

    resumed = MemberStreams([5, 6, 7])
    resumed.load(saved)
    torch.testing.assert_close(draws(resumed), expected, rtol=0, atol=0)


def test_member_k_draws_from_its_own_seed():
    streams = MemberStreams([5, 6, 7])
    alone = randn_members(member_generators([6]), (4,), "cpu")
    torch.testing.assert_close(draws(streams)[1], alone[0], rtol=0, atol=0)


@pytest.mark.parametrize(
    "states",
    [
        [torch.zeros(16, dtype=torch.uint8)] * 3,  # CUDA generators' states (Philox seed, offset)
        [torch.Generator().manual_seed(0).get_state()] * 2,  # two members saved, three now
    ],
)
def test_a_state_of_another_device_type_or_member_count_warns_and_reseeds(states):
    streams = MemberStreams([5, 6, 7])
    streams.load(states)
    with pytest.warns(UserWarning, match="fresh streams from the same seeds"):
        got = draws(streams)
    torch.testing.assert_close(got, draws(MemberStreams([5, 6, 7])), rtol=0, atol=0)
