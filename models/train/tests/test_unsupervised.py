"""The profile of FEATURES.md "## Profile (unsupervised)": hand-worked cases and the
vectorised implementation against the plain reference."""

import unittest

import numpy as np

from train import unsupervised as u


class Profile(unittest.TestCase):
    def test_learned_sequence_has_no_novelty(self):
        seq = list(range(100)) + list(range(50))
        p = u.Profile().fit([seq])
        self.assertTrue(np.all(p.window_novelty(seq) == 0))
        self.assertEqual(p.score(seq), 0.0)

    def test_by_hand(self):
        p = u.Profile().fit([[1, 2, 3, 4, 5, 6, 7]])
        # [1, 2, 9]: n=1: 9 unseen -> 1/3; n=2: (1,2) seen, (2,9) not -> 1/2; n=3: (1,2,9) -> 1/1.
        # n=4..6 undefined for a 3-token window: novelty = (1/3 + 1/2 + 1) / 3.
        self.assertAlmostEqual(p.score([1, 2, 9]), (1 / 3 + 1 / 2 + 1) / 3)

    def test_empty_profile_and_sequence(self):
        p = u.Profile()
        self.assertEqual(p.window_novelty([]).shape, (0,))
        self.assertEqual(p.score([]), 0.0)
        self.assertEqual(p.score([1, 2, 3]), 1.0)

    def test_gate_zeroes_only_known_windows(self):
        p = u.Profile().fit([list(range(64))])
        seq = list(range(64)) + [1000 + i for i in range(32)]  # windows: known, half novel
        nov = p.window_novelty(seq)
        self.assertEqual(nov[0], 0.0)
        self.assertGreater(nov[1], 0.0)
        gated = u.gate(np.array([0.9, 0.8]), nov)
        self.assertEqual(gated.tolist(), [0.0, 0.8])

    def test_sequence_covering_by_hand(self):
        from train.evaluate import SubstringIndex
        index = SubstringIndex([[1, 2, 3, 4], [5, 6]])
        # [1 2 3] [5 6] [9]: 5 does not follow 3 anywhere, 9 is never seen.
        self.assertEqual(index.cover([1, 2, 3, 5, 6, 9]), 3)
        # [2 3 4] [5]: no substring runs from one training sequence into the next.
        self.assertEqual(index.cover([2, 3, 4, 5]), 2)
        self.assertEqual(index.cover([1, 2, 3, 4]), 1)
        self.assertEqual(index.cover([]), 0)

    def test_matches_reference(self):
        rng = np.random.default_rng(5)
        learn = [rng.integers(0, 12, size=rng.integers(0, 200)).tolist() for _ in range(10)]
        p = u.Profile().fit(learn)
        ref = u.fit_ref(learn)
        for n in (0, 1, 2, 5, 6, 7, 63, 64, 65, 96, 97, 250):
            s = rng.integers(0, 14, size=n).tolist()
            np.testing.assert_allclose(p.window_novelty(s), u.window_novelty_ref(ref, s), atol=1e-12)
            self.assertAlmostEqual(p.score(s), u.score_ref(ref, s), places=12)


if __name__ == "__main__":
    unittest.main()
