"""The paired bootstrap used by the MagCrop ablation and `geomag eval --compare`."""

import numpy as np

from geomag.eval.bootstrap import paired_bootstrap, paired_mean_bootstrap


def test_interval_covers_a_known_difference():
    rng = np.random.default_rng(1)
    b = rng.random(400) < 0.5
    a = b.copy()
    flip = rng.choice(400, 60, replace=False)  # A right on 60 more samples: +15 points
    a[flip] = True
    true = a.mean() - b.mean()
    d = paired_mean_bootstrap(a.astype(float), b.astype(float))
    assert d.low <= true <= d.high
    assert d.verdict == "better"


def test_identical_arms_are_within_noise_with_a_zero_width_interval():
    x = np.random.default_rng(2).random(100) < 0.3
    d = paired_mean_bootstrap(x.astype(float), x.astype(float))
    assert d.diff == 0 and d.low == 0 and d.high == 0 and d.verdict == "within noise"


def test_corpus_level_metric_is_resampled_as_a_ratio():
    inter = np.array([5.0, 0.0, 10.0, 1.0])
    union = np.array([10.0, 10.0, 10.0, 2.0])
    d = paired_bootstrap(
        lambda i: inter[i].sum() / union[i].sum(), lambda i: 0.0 * len(i), len(inter), resamples=200
    )
    assert abs(d.a - 16 / 32) < 1e-12 and d.low <= d.a <= d.high
