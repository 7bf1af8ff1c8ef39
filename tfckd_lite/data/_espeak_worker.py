"""Synthesise a list of utterances with libespeak-ng through ctypes; runs as its own process.

Notebook: 01_signals_and_data.ipynb

Why a separate process: libespeak-ng seeds ``rand()`` from the clock when it starts (we re-seed
it per job with ``espeak_ng_SetRandSeed``) and keeps synthesis state in static variables (pitch flutter
position, waveform phase, filter memories) that no API call resets, so the samples of an
utterance depend on everything the library synthesised before it in the same process. Run in a
fresh process on a fixed list of jobs, the output is byte-for-byte reproducible.

Protocol (standard library only, so the process starts in milliseconds): stdin carries one JSON
object ``{"library": path, "data": path, "jobs": [{"text", "voice", "rate", "pitch", "range",
"seed"}]}``;
stdout carries, per job, a little-endian uint32 sample count followed by that many int16 samples
at the library's rate (22,050 Hz). Errors go to stderr with exit status 1.
"""

import ctypes
import json
import struct
import sys

AUDIO_OUTPUT_RETRIEVAL = 1
INITIALIZE_DONT_EXIT = 0x8000
POS_CHARACTER = 1
CHARS_UTF8 = 1
ENDPAUSE = 0x1000
PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}


def main() -> int:
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    lib = ctypes.CDLL(request["library"])
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_RETRIEVAL, 0, request["data"].encode(),
                                 INITIALIZE_DONT_EXIT)
    if rate <= 0:
        sys.stderr.write(f"espeak_Initialize failed ({rate}) with data {request['data']}\n")
        return 1

    chunks: list[bytes] = []
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                     ctypes.c_void_p)

    def on_samples(samples, count, events):
        if count > 0 and samples:
            chunks.append(ctypes.string_at(samples, count * 2))
        return 0

    callback = callback_type(on_samples)
    lib.espeak_SetSynthCallback(callback)
    out = []            # written at the end, so a full pipe never stalls the synthesis
    for job in request["jobs"]:
        status = lib.espeak_SetVoiceByName(job["voice"].encode())
        if status != 0:
            sys.stderr.write(f"espeak voice {job['voice']!r} not found (status {status})\n")
            return 1
        # espeak_Initialize seeds libc's rand() from the clock (breathy variants use it)
        lib.espeak_ng_SetRandSeed(int(job.get("seed", 0)))
        for name in ("rate", "pitch", "range"):
            lib.espeak_SetParameter(PARAM[name], int(job[name]), 0)
        text = job["text"].encode("utf-8") + b"\0"
        chunks.clear()
        status = lib.espeak_Synth(text, len(text), 0, POS_CHARACTER, 0, CHARS_UTF8 | ENDPAUSE,
                                  None, None)
        if status != 0 or lib.espeak_Synchronize() != 0:
            sys.stderr.write(f"espeak_Synth failed (status {status}) for {job['text']!r}\n")
            return 1
        pcm = b"".join(chunks)
        out.append(struct.pack("<I", len(pcm) // 2))
        out.append(pcm)
    sys.stdout.buffer.write(b"".join(out))
    sys.stdout.buffer.flush()
    lib.espeak_Terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
