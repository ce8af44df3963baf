"""The scoring contract against values worked out by hand from FEATURES.md, so that a change
that keeps Python and Rust in agreement but drifts from the written contract still fails."""

import math
import unittest

import numpy as np

from train import contract as c


class Fnv(unittest.TestCase):
    def test_known_vectors(self):
        # The published FNV-1a 32-bit test vectors.
        self.assertEqual(c.fnv1a32(b""), 0x811C9DC5)
        self.assertEqual(c.fnv1a32(b"a"), 0xE40C292C)
        self.assertEqual(c.fnv1a32(b"foobar"), 0xBF9CF968)

    def test_ngram_bytes(self):
        # the byte n, then each token as u16 little-endian
        self.assertEqual(c.ngram_bytes([0]), bytes([1, 0, 0]))
        self.assertEqual(c.ngram_bytes([0, 1]), bytes([2, 0, 0, 1, 0]))
        self.assertEqual(c.ngram_bytes([523, 5, 256]), bytes([3, 0x0B, 0x02, 5, 0, 0, 1]))

    def test_vectorised_hash_matches_reference(self):
        seq = np.array([0, 1, 523, 512, 255, 256, 5, 5, 5])
        for n in (1, 2, 3):
            self.assertEqual(
                c.ngram_hashes(seq, n).tolist(),
                [c.fnv1a32(c.ngram_bytes(seq[i : i + n])) for i in range(len(seq) - n + 1)],
            )


class Windows(unittest.TestCase):
    def test_edge_cases(self):
        self.assertEqual(c.window_bounds(0), [])
        self.assertEqual(c.window_bounds(1), [(0, 1)])
        self.assertEqual(c.window_bounds(10), [(0, 10)])
        self.assertEqual(c.window_bounds(63), [(0, 63)])
        self.assertEqual(c.window_bounds(64), [(0, 64)])
        self.assertEqual(c.window_bounds(65), [(0, 64), (1, 65)])
        self.assertEqual(c.window_bounds(96), [(0, 64), (32, 96)])
        self.assertEqual(c.window_bounds(97), [(0, 64), (32, 96), (33, 97)])
        self.assertEqual(c.window_bounds(128), [(0, 64), (32, 96), (64, 128)])

    def test_feature_rows_follow_windows(self):
        for n in (0, 1, 63, 64, 65, 96):
            self.assertEqual(c.sequence_features(list(range(n))).shape, (len(c.window_bounds(n)), c.DIM))


class Features(unittest.TestCase):
    def test_two_tokens_by_hand(self):
        # [0, 1]: n-grams (0), (1), (0, 1); FNV-1a of 01 00 00, 01 01 00, 02 00 00 01 00 is
        # 0x0bca446c, 0x31ccbed5, 0x795ce52c -> buckets 1132, 3797, 1324; each count 1, so
        # log(2) each, L2-normalised to 1/sqrt(3).
        self.assertEqual(c.fnv1a32(bytes([1, 0, 0])), 0x0BCA446C)
        self.assertEqual(c.fnv1a32(bytes([1, 1, 0])), 0x31CCBED5)
        self.assertEqual(c.fnv1a32(bytes([2, 0, 0, 1, 0])), 0x795CE52C)
        x = c.sequence_features([0, 1]).toarray()[0]
        expect = np.zeros(c.DIM, dtype=np.float32)
        expect[[1132, 3797, 1324]] = 1 / math.sqrt(3)
        np.testing.assert_allclose(x, expect, atol=1e-7)
        self.assertEqual(x.dtype, np.float32)

    def test_repeats_by_hand(self):
        # [5, 5, 5]: (5) x3 -> bucket 1329, (5,5) x2 -> 2125, (5,5,5) x1 -> 2487.
        x = c.sequence_features([5, 5, 5]).toarray()[0]
        raw = {1329: math.log(4), 2125: math.log(3), 2487: math.log(2)}
        norm = math.sqrt(sum(v * v for v in raw.values()))
        for i, v in raw.items():
            self.assertAlmostEqual(float(x[i]), v / norm, places=6)
        self.assertEqual(int((x != 0).sum()), 3)
        self.assertEqual(c.window_features_ref([5, 5, 5]), [float(v) for v in x])

    def test_vectorised_matches_reference(self):
        c.self_test(seed=3)

    def test_invalid_tokens_rejected(self):
        with self.assertRaises(ValueError):
            c.sequence_features([1, 524])
        with self.assertRaises(ValueError):
            c.sequence_features([-1])


class ProcessScore(unittest.TestCase):
    def test_by_hand(self):
        s = [0.1, 0.9, 0.8, 0.7, 0.0]  # means of 3: 0.6, 0.8, 0.5
        self.assertAlmostEqual(c.process_score(s), 0.8)
        self.assertAlmostEqual(c.process_score_ref(s), 0.8)
        self.assertAlmostEqual(c.process_score([0.2, 0.4]), 0.3)  # k = m = 2
        self.assertAlmostEqual(c.process_score([0.7]), 0.7)
        self.assertEqual(c.process_score([]), 0.0)
        self.assertEqual(c.process_score_ref([]), 0.0)

    def test_one_spike_is_not_enough(self):
        self.assertAlmostEqual(c.process_score([0, 0, 1.0, 0, 0]), 1 / 3)

    def test_stacked(self):
        owner = np.array([0, 0, 0, 2, 2])
        out = c.process_scores(np.array([0.1, 0.2, 0.3, 0.5, 0.7]), owner, 3)
        np.testing.assert_allclose(out, [0.2, 0.0, 0.6])


if __name__ == "__main__":
    unittest.main()
