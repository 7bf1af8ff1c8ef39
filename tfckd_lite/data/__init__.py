"""Data: the reduced offline dataset, loaders for real corpora, batches for training.

Notebook: 01_signals_and_data.ipynb

- :func:`build_dataset` builds the reduced set (``mini`` or ``small`` profile) from recorded
  asterisk prompts and espeak-ng voices mixed with procedural noise, in the VoiceBank+DEMAND
  layout, deterministically (``builder.py``, ``speech.py``, ``noise.py``); with ``mc-mini``
  or ``mc-small`` it simulates a reduced L3DAS23 instead: the same speech and noise in
  reverberant rooms, heard by two first-order Ambisonics microphones, in the L3DAS23 Task 1
  layout (``builder_mc.py``, ``rooms.py``).
- :func:`open_corpus` opens the reduced set, VoiceBank+DEMAND, DNS Challenge or L3DAS23 as a
  :class:`PairedDataset` of ``(noisy, clean, name)`` items (``corpora.py``).
- :func:`make_loader` gives fixed-shape training batches (optionally remixed on the fly with
  other pairs' noise) or whole test utterances (``loader.py``).
- :func:`load_manifest` and :func:`manifest_sha256` read a reduced set's manifest, the one file
  that pins its exact contents and how they were made; :func:`files_sha256` is the contents
  alone, :func:`plan_sha256` the pairs' plan (what a rebuild on another machine keeps;
  ``manifest.py``).
"""

from .builder import PROFILES, MissingSourceWarning, Profile, build_dataset, verify_dataset
from .corpora import CorpusError, PairedDataset, PairEntry, detect_kind, open_corpus
from .loader import REMIX_SNR_DB, EvalLoader, TrainLoader, make_loader, remix
from .manifest import (files_sha256, plan_sha256, load_manifest, manifest_sha256,
                       software_versions)
from .noise import NOISE_TYPES, make_noise, mix_at_snr, snr_db

__all__ = ["PROFILES", "Profile", "MissingSourceWarning", "build_dataset", "load_manifest",
           "manifest_sha256", "files_sha256", "plan_sha256", "software_versions",
           "verify_dataset", "CorpusError", "PairedDataset", "PairEntry", "detect_kind",
           "open_corpus", "EvalLoader", "TrainLoader", "make_loader", "remix", "REMIX_SNR_DB",
           "NOISE_TYPES", "make_noise", "mix_at_snr", "snr_db"]
