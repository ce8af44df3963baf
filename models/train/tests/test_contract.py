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
        with self.assertRaises(ValueError):
            c.sequence_features([1, 8704])

    def test_classed_tokens_hash_as_u16(self):
        # 8703 = 0x21FF: the high byte is no longer 0 or 1.
        self.assertEqual(c.ngram_bytes([8703, 1024]), bytes([2, 0xFF, 0x21, 0x00, 0x04]))
        seq = np.array([8703, 1024, 5129, 0, 523, 8192, 8703])
        for n in (1, 2, 3):
            self.assertEqual(
                c.ngram_hashes(seq, n).tolist(),
                [c.fnv1a32(c.ngram_bytes(seq[i : i + n])) for i in range(len(seq) - n + 1)],
            )


class Vocabulary(unittest.TestCase):
    """Vocabulary 2 as FEATURES.md "## Tokens" writes it."""

    def test_size_and_classes(self):
        self.assertEqual(c.VOCAB_VERSION, 2)
        self.assertEqual(c.VOCAB_SIZE, 8704)
        self.assertEqual(len(c.CLASS_NAMES), 15)
        self.assertEqual((c.CLASS_NAMES[0], c.CLASS_NAMES[5], c.CLASS_NAMES[-1]), ("err_perm", "create", "mode_exec"))

    def test_check_tokens_bounds(self):
        for ok in ([0, 511, 512, 523, 1024, 8703], [], np.array([8703])):
            c.check_tokens(ok)
        for bad in (8704, 524, 1023, -1):
            with self.assertRaises(ValueError, msg=bad) as cm:
                c.check_tokens([0, bad, 1])
            self.assertIn(str(bad), str(cm.exception))
        self.assertTrue(c.is_token(8703) and c.is_token(1024) and c.is_token(523))
        self.assertFalse(c.is_token(8704) or c.is_token(524) or c.is_token(1023))

    def test_class_and_split(self):
        # openat with O_CREAT: 512 * (6 + 1) + 257
        self.assertEqual(c.class_token(257, 6), 3841)
        self.assertEqual(c.class_token(257, 0), 257)
        self.assertEqual(c.class_token(511, 15), 8703)
        self.assertEqual(c.split_token(3841), (257, 6))
        self.assertEqual(c.split_token(1024), (0, 1))
        self.assertEqual(c.split_token(8703), (511, 15))
        self.assertEqual(c.split_token(257), (257, 0))
        for t in (512, 523, 524, 1023, 8704):
            self.assertIsNone(c.split_token(t))
        for bad in ((512, 1), (0, 16), (-1, 0)):
            with self.assertRaises(ValueError):
                c.class_token(*bad)
        for t in range(c.VOCAB_SIZE):
            nc = c.split_token(t)
            if nc is not None:
                self.assertEqual(c.class_token(*nc), t)

    def test_project_v1_lists(self):
        self.assertEqual(c.project_v1([0, 1, 511, 512, 523]), [0, 1, 511, 512, 523])  # < 1024 unchanged
        self.assertEqual(c.project_v1([1024, 1024 + 59, 3841, 8703]), [0, 59, 257, 511])
        self.assertEqual(c.project_v1([]), [])
        self.assertIsInstance(c.project_v1([8703])[0], int)

    def test_project_v1_arrays(self):
        a = np.array([0, 523, 1024, 1024 + 59, 8703], dtype=np.int64)
        out = c.project_v1(a)
        self.assertIsInstance(out, np.ndarray)
        self.assertEqual(out.dtype, a.dtype)
        self.assertEqual(out.tolist(), [0, 523, 0, 59, 511])
        self.assertEqual(a.tolist(), [0, 523, 1024, 1024 + 59, 8703])  # the input is left alone
        u = c.project_v1(np.array([8703, 7], dtype=np.uint16))
        self.assertEqual((u.dtype, u.tolist()), (np.uint16, [511, 7]))
        every = np.array([t for t in range(c.VOCAB_SIZE) if c.is_token(t)])
        proj = c.project_v1(every)
        self.assertLess(int(proj.max()), c.VOCAB_V1_SIZE)
        # the projection forgets the class and nothing else
        self.assertEqual(proj.tolist(), [t if t < 512 else (t if t < 1024 else c.split_token(t)[0]) for t in every.tolist()])

    def test_random_tokens_are_valid_and_mixed(self):
        toks = c.random_tokens(np.random.default_rng(0), 2000)
        c.check_tokens(toks)
        classed = sum(t >= 1024 for t in toks)
        self.assertTrue(800 < classed < 1200, classed)


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
