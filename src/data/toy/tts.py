"""English speech for the toy corpus from eSpeak NG, driven through ctypes.

eSpeak NG is GPL-licensed. This is the only module in the project that loads it, and only the toy
corpus builder imports this module, so the rest of the framework never links against it. The
library and its voice data come from the ``espeakng-loader`` wheel: no system package is needed.

Determinism: libespeak-ng keeps synthesis state in C statics that no API call resets (pitch
flutter phase, gain control, resonator memories, ...), so the same text spoken twice in one
process gives different samples, and a clip's audio would depend on which clips came before it.
Re-initialising (espeak_Terminate + espeak_Initialize) does not clear them either. What does is
unloading the library: every :meth:`Speaker.synthesize` call dlopens libespeak-ng, initialises it,
seeds its noise generator, speaks, terminates and dlcloses it. That costs about 1 ms per call and
makes synthesis a pure function of its arguments, in any process and in any order.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading

import numpy as np

from src.utils.errors import UserError

log = logging.getLogger(__name__)

# espeak_AUDIO_OUTPUT: SYNCHRONOUS = synthesise inside espeak_Synth, hand samples to the callback.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000  # add a short pause at the end of the text
# espeak_PARAMETER
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_EE_OK = 0

# int callback(short *wav, int numsamples, espeak_EVENT *events); return 0 to go on.
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

# English voices (base voice + timbre variant) checked to load and speak with the wheel's data.
# Note "en-gb" is not a voice name in espeak-ng 1.52 ("en" is British English).
ENGLISH_VOICES: tuple[str, ...] = (
    "en-us", "en-us+f3", "en-us+m3", "en+f2", "en+m1", "en-gb-x-rp+f4", "en-gb-scotland+m5", "en-029+f1",
)


def _dlclose(handle: int) -> None:
    import _ctypes

    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)  # POSIX / Windows
    if close is not None:
        close(handle)


def _locate_espeak() -> tuple[str, str]:
    """(library path, data path) of the espeakng-loader wheel's eSpeak NG, checked to load and to have the
    functions used here (closed again: the synthesizer opens it per use, see _still_loaded)."""
    try:
        import espeakng_loader
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "The toy corpus needs eSpeak NG from the 'espeakng-loader' wheel: pip install espeakng-loader"
        ) from e
    lib_path = espeakng_loader.get_library_path()
    try:
        data_path = espeakng_loader.get_data_path()
        lib = ctypes.CDLL(lib_path)
    except (OSError, RuntimeError) as e:
        raise RuntimeError(
            f"Could not load libespeak-ng from espeakng-loader ({lib_path}): {e}. "
            "Reinstall it: pip install --force-reinstall espeakng-loader"
        ) from e
    needed = ("espeak_Initialize", "espeak_Synth", "espeak_Terminate")
    missing = [s for s in needed if not hasattr(lib, s)]
    _dlclose(lib._handle)
    if missing:
        raise RuntimeError(
            f"{lib_path} (espeakng-loader) lacks {missing}; reinstall espeakng-loader"
        )
    return lib_path, data_path


class Speaker:
    """Speaks English text with libespeak-ng from espeakng-loader (see the module note on state)."""

    def __init__(self) -> None:
        self._lib_path, self._data_path = _locate_espeak()
        try:  # older builds draw noise from libc rand(); POSIX only, and optional
            self._libc_srand = ctypes.CDLL(None).srand
            self._libc_srand.argtypes = [ctypes.c_uint]
            self._libc_srand.restype = None
        except (OSError, TypeError, AttributeError):
            self._libc_srand = None
        self._chunks: list[np.ndarray] = []
        # Keep a reference: ctypes frees the C trampoline when the Python object dies.
        self._callback = _SYNTH_CALLBACK(self._on_samples)
        self._lock = threading.Lock()
        self.sample_rate: int = 0
        # One probe call: fixes sample_rate and fails early (here) if the data path is broken.
        _, self.sample_rate = self.synthesize("test")
        if self._still_loaded():
            log.warning(
                "libespeak-ng stays loaded after dlclose (another module holds it open), so its internal "
                "state carries over between clips: toy-corpus audio will not be bit-reproducible."
            )

    def _still_loaded(self) -> bool:
        noload = getattr(os, "RTLD_NOLOAD", None)
        if noload is None:
            return False
        try:
            handle = ctypes.CDLL(self._lib_path, mode=noload)
        except OSError:
            return False
        _dlclose(handle._handle)
        return True

    def _on_samples(self, wav, n: int, _events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def _load(self) -> tuple[ctypes.CDLL, int]:
        lib = ctypes.CDLL(self._lib_path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Terminate.restype = ctypes.c_int
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self._data_path.encode(), 0)
        if rate <= 0:
            _dlclose(lib._handle)
            raise RuntimeError(
                f"espeak_Initialize failed (returned {rate}) with data path {self._data_path} "
                "(from espeakng-loader)"
            )
        return lib, rate

    def synthesize(
        self, text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50, seed: int = 0
    ) -> tuple[np.ndarray, int]:
        """Speak ``text``; returns (float32 mono samples in [-1, 1], sample rate).

        A pure function of its arguments: ``seed`` fixes eSpeak's noise generators.
        """
        with self._lock:
            lib, sr = self._load()
            try:
                lib.espeak_SetSynthCallback(self._callback)
                if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                    raise UserError(f"eSpeak NG has no voice '{voice}' (try one of {ENGLISH_VOICES})")
                # SetVoiceByName resets parameters to the voice's defaults, so set ours afterwards.
                for param, value in ((_RATE, rate), (_PITCH, pitch), (_VOLUME, 100), (_RANGE, 50)):
                    lib.espeak_SetParameter(param, int(value), 0)
                if hasattr(lib, "espeak_ng_SetRandSeed"):
                    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
                    lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
                if self._libc_srand is not None:
                    self._libc_srand(int(seed) & 0xFFFFFFFF)
                self._chunks = []
                buf = ctypes.create_string_buffer(text.encode("utf-8"))
                flags = _CHARS_UTF8 | _ENDPAUSE
                err = lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, flags, None, None)
                if err != _EE_OK:
                    raise RuntimeError(f"espeak_Synth failed with error {err} for text {text!r}")
                lib.espeak_Synchronize()
                chunks, self._chunks = self._chunks, []
            finally:
                lib.espeak_Terminate()
                _dlclose(lib._handle)
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return pcm.astype(np.float32) / 32768.0, sr


_SPEAKER: Speaker | None = None
_SPEAKER_LOCK = threading.Lock()


def get_speaker() -> Speaker:
    """The process-wide speaker (the library is located and checked once per process)."""
    global _SPEAKER
    with _SPEAKER_LOCK:
        if _SPEAKER is None:
            _SPEAKER = Speaker()
        return _SPEAKER


def synthesize(
    text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50, seed: int = 0
) -> tuple[np.ndarray, int]:
    """Speak ``text`` with the process-wide speaker; returns (float32 mono, sample rate)."""
    return get_speaker().synthesize(text, voice, rate, pitch, seed)
