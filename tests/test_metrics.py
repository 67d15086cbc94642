"""Each metric against an independent computation."""

import numpy as np
import pytest
from scipy import linalg, special

from jaxgan.metrics import classifier, frechet, kid, modes, parzen, precision_recall


def direct_parzen(x, mu, sigma):
  """Straight from the paper's formula, float64, explicit [N, M, d] differences."""
  x, mu = np.asarray(x, np.float64), np.asarray(mu, np.float64)
  a = (x[:, None, :] - mu[None, :, :]) / sigma
  e = special.logsumexp(-0.5 * (a**2).sum(2), axis=1) - np.log(len(mu))
  return e - x.shape[1] * np.log(sigma * np.sqrt(2 * np.pi))


@pytest.mark.parametrize("sigma", [0.1, 0.2154, 1.0])
def test_parzen_matches_direct_formula(sigma):
  rng = np.random.default_rng(0)
  mu = rng.uniform(size=(300, 20))
  x = rng.uniform(size=(37, 20))
  np.testing.assert_allclose(
    parzen.log_likelihood(x, mu, sigma, batch_size=8),
    direct_parzen(x, mu, sigma),
    rtol=1e-5,
    atol=1e-3,
  )


def test_parzen_protocol_picks_sigma_on_validation_and_reports_standard_error():
  rng = np.random.default_rng(1)
  mu = rng.normal(0.5, 0.1, size=(400, 10))
  valid = rng.normal(0.5, 0.1, size=(50, 10))
  test = rng.normal(0.5, 0.1, size=(80, 10))
  out = parzen.parzen_protocol(mu, valid, test)
  sigmas = np.logspace(-1, 0, 10)
  valid_ll = [direct_parzen(valid, mu, s).mean() for s in sigmas]
  best = sigmas[int(np.argmax(valid_ll))]
  ll = direct_parzen(test, mu, best)
  assert out["parzen_sigma"] == pytest.approx(best)
  np.testing.assert_allclose(out["parzen_valid_ll"], valid_ll, rtol=1e-5)
  assert out["parzen_ll"] == pytest.approx(ll.mean(), rel=1e-5)
  assert out["parzen_se"] == pytest.approx(ll.std() / np.sqrt(len(ll)), rel=1e-4)


def test_frechet_distance_on_known_gaussians():
  rng = np.random.default_rng(0)
  mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
  a, b = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
  # Commuting (diagonal) covariances: FD = |dmu|^2 + sum (sqrt a - sqrt b)^2.
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert frechet.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(
    expected, rel=1e-10
  )
  # General SPD covariances, against scipy.linalg.sqrtm written out directly.
  m = rng.normal(size=(6, 6))
  s1, s2 = m @ m.T + np.eye(6), np.cov(rng.normal(size=(100, 6)), rowvar=False)
  direct = np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
  assert frechet.frechet_distance(np.zeros(6), s1, np.zeros(6), s2) == pytest.approx(
    direct, rel=1e-8
  )
  # A scaled covariance: FD = (1 - c)^2 tr(S).
  assert frechet.frechet_distance(np.zeros(6), s1, np.zeros(6), 4 * s1) == pytest.approx(
    np.trace(s1), rel=1e-8
  )
  assert frechet.frechet_distance(mu1, s1[:5, :5], mu1, s1[:5, :5]) == pytest.approx(0.0, abs=1e-6)


def test_gaussian_stats_are_float64_and_unbiased():
  x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
  mu, sigma = frechet.gaussian_stats(x)
  assert mu.dtype == sigma.dtype == np.float64
  np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64).T, ddof=1))


def test_kid_matches_a_naive_loop_and_is_unbiased():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(12, 4)), rng.normal(0.3, 1, size=(9, 4))
  k = lambda a, b: (a @ b / 4 + 1) ** 3
  m, n = len(x), len(y)
  naive = (
    sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    + sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    - 2 * sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
  )
  assert kid.mmd2_unbiased(x, y) == pytest.approx(naive, rel=1e-10)
  same = kid.kernel_distance(
    rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8)), num_subsets=20, subset_size=500
  )
  shifted = kid.kernel_distance(
    rng.normal(size=(2000, 8)), rng.normal(0.5, 1, size=(2000, 8)), num_subsets=20, subset_size=500
  )
  assert abs(same[0]) < 3 * same[1] / np.sqrt(20) + 1e-3  # unbiased: ~0 for equal distributions
  assert shifted[0] > 10 * abs(same[0])


def test_inception_score_bounds():
  uniform = np.full((100, 10), 0.1)
  assert classifier.inception_score(uniform)[0] == pytest.approx(1.0)
  confident = np.eye(10)[np.arange(1000) % 10] * 0.999 + 0.0001
  assert classifier.inception_score(confident)[0] == pytest.approx(10.0, rel=0.02)
  one_class = np.tile(np.eye(10)[3], (100, 1))
  assert classifier.inception_score(one_class)[0] == pytest.approx(1.0, abs=1e-6)


def test_class_coverage():
  probs = np.eye(10)[[0] * 50 + [1] * 50]
  share, kl = classifier.class_coverage(probs)
  np.testing.assert_allclose(share, [0.5, 0.5] + [0] * 8)
  assert kl == pytest.approx(np.log(5))
  share, kl = classifier.class_coverage(np.eye(10)[np.arange(100) % 10])
  assert kl == pytest.approx(0.0, abs=1e-12)


def brute_force_pr(real, fake, k):
  d = lambda a, b: ((a[:, None] - b[None]) ** 2).sum(-1)
  rr, ff = np.sort(d(real, real), 1)[:, k], np.sort(d(fake, fake), 1)[:, k]
  precision = np.mean([(d(f[None], real)[0] <= rr).any() for f in fake])
  recall = np.mean([(d(r[None], fake)[0] <= ff).any() for r in real])
  return precision, recall


def test_precision_recall_matches_brute_force():
  rng = np.random.default_rng(0)
  real = rng.normal(size=(120, 5))
  fake = np.concatenate([rng.normal(size=(60, 5)), rng.normal(4, 0.3, size=(60, 5))])
  p, r = precision_recall.precision_recall(real, fake, k=3)
  bp, br = brute_force_pr(real, fake, 3)
  assert p == pytest.approx(bp) and r == pytest.approx(br)
  assert 0.4 < p < 0.6  # half the fakes are far off the data manifold
  assert precision_recall.precision_recall(real, real + 1e-4)[0] == 1.0


def test_mode_coverage_counts_modes_and_quality():
  centers = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
  rng = np.random.default_rng(0)
  good = np.concatenate([c + 0.01 * rng.normal(size=(30, 2)) for c in centers[:3]])
  bad = np.full((10, 2), 1.0)  # between modes: low quality
  out = modes.mode_coverage(np.concatenate([good, bad]), centers, std=0.02, min_count=20)
  assert out["modes_covered"] == 3 and out["modes_total"] == 4
  assert out["hq_fraction"] == pytest.approx(90 / 100)
  assert out["mode_kl_uniform"] == pytest.approx(np.log(4 / 3))
