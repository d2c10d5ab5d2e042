"""Planning facts of audio files: content hash and duration, read once and cached."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from mirkd.manifest import AudioFacts, audio_facts, file_sha1


def test_audio_facts_are_cached_and_refreshed_when_a_file_changes(tmp_path, monkeypatch):
    song, cache = tmp_path / "a.wav", tmp_path / "facts.json"
    sf.write(song, np.zeros(22050 * 2, np.float32), 22050)
    assert audio_facts([str(song)], cache) == {str(song): AudioFacts(file_sha1(song), 2.0)}

    def no_reading(path):
        raise AssertionError(f"{path} read again")

    monkeypatch.setattr("mirkd.manifest.file_sha1", no_reading)
    assert audio_facts([str(song)], cache)[str(song)].seconds == 2.0  # from the cache
    monkeypatch.undo()
    sf.write(song, np.zeros(22050 * 3, np.float32), 22050)  # new content, new size
    assert audio_facts([str(song)], cache)[str(song)].seconds == 3.0


def test_a_cache_without_durations_adds_them_without_rehashing(tmp_path, monkeypatch):
    song, cache = tmp_path / "a.wav", tmp_path / "facts.json"
    sf.write(song, np.zeros(22050, np.float32), 22050)
    audio_facts([str(song)], cache)
    old = json.loads(cache.read_text())
    del old[str(song)]["seconds"]  # as written before durations were planned with
    cache.write_text(json.dumps(old))
    monkeypatch.setattr("mirkd.manifest.file_sha1", lambda path: "rehashed")
    facts = audio_facts([str(song)], cache)[str(song)]
    assert facts.seconds == 1.0 and facts.sha1 != "rehashed"
    assert json.loads(cache.read_text())[str(song)]["seconds"] == 1.0


def test_an_unreadable_header_plans_as_zero_seconds(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    assert audio_facts([str(bad)], tmp_path / "facts.json")[str(bad)].seconds == 0.0
