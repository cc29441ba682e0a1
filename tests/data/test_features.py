"""Log-mel features equal transformers' WhisperFeatureExtractor, padded per batch or to 30 s."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from src.data.features import N_FRAMES_30S, batch_frames, clip_features, log_mel, pad_features


@pytest.mark.parametrize("n_mels", [80, 128])
def test_matches_whisper_feature_extractor_padded_to_30s(n_mels):
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(int(16_000 * s)) * a).astype(np.float32) for s, a in ((2.0, 0.1), (4.3, 0.02))]
    ref = WhisperFeatureExtractor(feature_size=n_mels)(clips, sampling_rate=16_000, return_tensors="np").input_features
    ours = pad_features([clip_features(torch.from_numpy(c), n_mels) for c in clips], N_FRAMES_30S).numpy()
    assert ours.shape == ref.shape == (2, n_mels, 3000)
    np.testing.assert_allclose(ours, ref, atol=2e-5)


def test_per_clip_padding_equals_featurizing_the_zero_padded_batch():
    rng = np.random.default_rng(1)
    a = torch.from_numpy((rng.standard_normal(16_000) * 0.2).astype(np.float32))
    b = torch.from_numpy((rng.standard_normal(27_777) * 0.05).astype(np.float32))
    n = batch_frames(27_777 // 160 + 3, pad_to_30s=False, multiple=32)
    assert n % 32 == 0 and n >= 27_777 // 160
    batch = torch.zeros(2, n * 160)
    batch[0, : a.numel()] = a
    batch[1, : b.numel()] = b
    ref = log_mel(batch)
    ours = pad_features([clip_features(a), clip_features(b)], n)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
