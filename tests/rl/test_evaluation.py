import numpy as np
import pytest

from rl.evaluation import protocol_summary


def test_protocol_is_mean_over_policies_of_median_over_seeds_of_episode_means():
    scores = np.array(
        [
            [[1, 3], [10, 10], [0, 0]],  # policy 0: seed means 2, 10, 0 -> median 2
            [[5, 5], [6, 8], [100, 100]],  # policy 1: seed means 5, 7, 100 -> median 7
        ],
        float,
    )
    summary = protocol_summary(scores)
    assert summary["medians"] == [2.0, 7.0]
    assert summary["mean"] == pytest.approx(4.5) and summary["std"] == pytest.approx(2.5)
    with pytest.raises(ValueError, match="policies, seeds, episodes"):
        protocol_summary(np.zeros((3, 4)))
