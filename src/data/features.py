"""Whisper log-mel features in torch, numerically equal to transformers' WhisperFeatureExtractor.

Clips are featurized one at a time (so each is computed once and can be cached) and padded in the
batch with their own silence value; that gives exactly what featurizing the zero-padded batch gives.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torchaudio.functional as AF

N_FFT = 400
HOP = 160
N_SAMPLES_30S = 480_000
N_FRAMES_30S = N_SAMPLES_30S // HOP


@lru_cache(maxsize=4)
def mel_filters(n_mels: int, sample_rate: int = 16_000) -> torch.Tensor:
    """(n_freqs, n_mels) slaney-normalised slaney-scale filters, as Whisper (and librosa) use."""
    return AF.melscale_fbanks(
        n_freqs=1 + N_FFT // 2, f_min=0.0, f_max=8000.0, n_mels=n_mels, sample_rate=sample_rate,
        norm="slaney", mel_scale="slaney",
    )


def log_mel(waveforms: torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """(B, N) or (N,) float waveforms at 16 kHz -> (B, n_mels, N // 160) Whisper log-mel."""
    squeeze = waveforms.dim() == 1
    w = waveforms.float().reshape(-1, waveforms.shape[-1])
    window = torch.hann_window(N_FFT, device=w.device)
    stft = torch.stft(w, N_FFT, HOP, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = mel_filters(n_mels).to(w.device).T @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    peak = log_spec.amax(dim=(1, 2), keepdim=True)
    log_spec = (torch.maximum(log_spec, peak - 8.0) + 4.0) / 4.0
    return log_spec[0] if squeeze else log_spec


def clip_features(audio: torch.Tensor, n_mels: int = 80) -> tuple[torch.Tensor, float]:
    """Features of one clip plus its silence value (what a zero-padded frame becomes).

    The clip is padded with N_FFT zeros so the frames near its end see zeros, as they do in a padded
    batch; frames after the returned ones are all exactly the silence value.
    """
    audio = audio.float()
    n_frames = (audio.numel() + N_FFT) // HOP
    feats = log_mel(torch.nn.functional.pad(audio, (0, N_FFT)), n_mels)[:, :n_frames]
    # A frame of pure zeros has power 0 -> log10(1e-10) = -10, clamped to peak - 8.
    peak = float(feats.max()) * 4.0 - 4.0
    silence = (max(-10.0, peak - 8.0) + 4.0) / 4.0
    return feats, silence


def pad_features(items: list[tuple[torch.Tensor, float]], n_frames: int) -> torch.Tensor:
    """Stack per-clip features into (B, n_mels, n_frames), filling with each clip's silence value."""
    n_mels = items[0][0].shape[0]
    out = torch.empty(len(items), n_mels, n_frames)
    for i, (f, silence) in enumerate(items):
        t = min(f.shape[1], n_frames)
        out[i, :, :t] = f[:, :t]
        out[i, :, t:] = silence
    return out


def batch_frames(max_frames: int, pad_to_30s: bool, multiple: int = 32) -> int:
    """Frames a batch is padded to: 3000 (Whisper's 30 s) or the longest clip rounded up."""
    if pad_to_30s:
        return N_FRAMES_30S
    return max(multiple, -(-max_frames // multiple) * multiple)
