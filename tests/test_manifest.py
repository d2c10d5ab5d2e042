"""Planning facts of audio files (content hash and duration, read once and cached) and the
walk of the data folders."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mirkd.checkpoints import save_checkpoint
from mirkd.errors import ConfigError
from mirkd.manifest import (
    SAMPLE_BLOCK_BYTES,
    SAMPLE_SHARE,
    AudioFacts,
    Track,
    audio_facts,
    check_annotations,
    content_digest,
    scan_audio,
)
from mirkd.workflow_plan import plan_run

from model_helpers import resolved_config, tiny_bundle
from workflow_helpers import tiny_config


def test_audio_facts_are_cached_and_refreshed_when_a_file_changes(tmp_path, monkeypatch):
    song, cache = tmp_path / "a.wav", tmp_path / "facts.json"
    sf.write(song, np.zeros(22050 * 2, np.float32), 22050)
    digest = content_digest(song)
    assert audio_facts([str(song)], cache) == {str(song): AudioFacts(digest, digest, 2.0)}

    def no_reading(path):
        raise AssertionError(f"{path} read again")

    monkeypatch.setattr("mirkd.manifest.content_digest", no_reading)
    assert audio_facts([str(song)], cache)[str(song)].seconds == 2.0  # from the cache
    monkeypatch.undo()
    sf.write(song, np.zeros(22050 * 3, np.float32), 22050)  # new content, new size
    assert audio_facts([str(song)], cache)[str(song)].seconds == 3.0


def test_audio_rewritten_with_its_size_and_mtime_kept_is_hashed_again(tmp_path):
    """`cp -p` / `rsync -t` keep size and mtime; the cache also keys on ctime and inode."""
    song, cache = tmp_path / "a.wav", tmp_path / "facts.json"
    sf.write(song, np.zeros(22050, np.float32), 22050)
    before = audio_facts([str(song)], cache)[str(song)].fingerprint
    st = song.stat()
    replacement = tmp_path / "b.wav"
    sf.write(replacement, np.full(22050, 0.5, np.float32), 22050)  # same size, new content
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, song)
    assert (song.stat().st_size, song.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    after = audio_facts([str(song)], cache)[str(song)].fingerprint
    assert after == content_digest(song) != before


def test_an_older_cache_entry_is_read_again(tmp_path, monkeypatch):
    """Entries keyed by size and mtime only (and without durations) are simply re-read."""
    song, cache = tmp_path / "a.wav", tmp_path / "facts.json"
    sf.write(song, np.zeros(22050, np.float32), 22050)
    st = song.stat()
    old_key = f"{st.st_size}:{st.st_mtime_ns}"
    cache.write_text(json.dumps({str(song): {"key": old_key, "sha1": "stale"}}))
    monkeypatch.setattr("mirkd.manifest.content_digest", lambda path: "rehashed")
    assert audio_facts([str(song)], cache)[str(song)] == AudioFacts("rehashed", "rehashed", 1.0)
    assert json.loads(cache.read_text())[str(song)]["key"] != old_key


def test_planning_reads_a_few_blocks_of_a_large_file_and_copies_share_the_digest(
    tmp_path, monkeypatch
):
    song = tmp_path / "a.wav"
    sf.write(song, np.random.default_rng(0).uniform(-1, 1, 22050 * 60), 22050)  # 2.6 MB
    reads = []
    real_pread = os.pread

    def counting_pread(fd, n, offset):
        reads.append(n)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    digest = content_digest(song)
    monkeypatch.undo()
    size = song.stat().st_size
    assert 2 * SAMPLE_BLOCK_BYTES <= sum(reads) <= SAMPLE_SHARE * size + SAMPLE_BLOCK_BYTES
    copy = tmp_path / "copy.wav"
    copy.write_bytes(song.read_bytes())
    assert content_digest(copy) == digest
    data = bytearray(song.read_bytes())
    data[-1] ^= 1  # the last block is always read
    copy.write_bytes(bytes(data))
    assert content_digest(copy) != digest


def test_a_copied_corpus_keeps_its_fingerprints(tmp_path):
    """New inodes and ctimes, the same bytes (a run and its data copied to scratch): the files
    are read again (a few blocks) and plan the same jobs, so nothing reruns."""
    song, cache = tmp_path / "a" / "s.wav", tmp_path / "facts.json"
    song.parent.mkdir()
    sf.write(song, np.random.default_rng(0).uniform(-1, 1, 22050 * 30), 22050)
    before = audio_facts([str(song)], cache)[str(song)]
    moved = tmp_path / "b"
    song.parent.rename(moved)
    shutil.copytree(moved, song.parent)  # same path, new inode and ctime
    assert audio_facts([str(song)], cache)[str(song)] == before


def test_a_cache_of_whole_file_hashes_keeps_them_as_fingerprints(tmp_path):
    """Upgrading mirkd reruns nothing: an entry with a matching key keeps its hash."""
    song, cache = tmp_path / "a.wav", tmp_path / "facts.json"
    sf.write(song, np.zeros(22050, np.float32), 22050)
    st = song.stat()
    key = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
    cache.write_text(json.dumps({str(song): {"key": key, "sha1": "old", "seconds": 1.0}}))
    assert audio_facts([str(song)], cache)[str(song)] == AudioFacts(
        content_digest(song), "old", 1.0
    )


def test_an_unreadable_header_plans_as_zero_seconds(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    assert audio_facts([str(bad)], tmp_path / "facts.json")[str(bad)].seconds == 0.0


def test_a_symlink_loop_is_not_followed_and_each_real_file_counts_once(tmp_path, caplog):
    folder = tmp_path / "songs"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.flac").write_bytes(name.encode())
    (folder / "loop").symlink_to(folder)  # loop -> .
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "c.flac").write_bytes(b"c")
    for link in ("x", "y"):  # two links to one folder
        (folder / link).symlink_to(tmp_path / "elsewhere")
    (folder / "again.flac").symlink_to(folder / "a.flac")  # a second path to one file
    (folder / "gone.flac").symlink_to(tmp_path / "missing.flac")
    with caplog.at_level(logging.WARNING, logger="mirkd.manifest"):
        tracks = scan_audio(folder, "unlabeled", need_labels=False)
    assert [Path(t.audio).relative_to(folder).as_posix() for t in tracks] == [
        "a.flac",
        "b.flac",
        "x/c.flac",
    ]
    assert "1 dangling symlink(s) ignored (their target is missing): gone.flac" in caplog.text
    assert "1 path(s) lead to a file already found (links), counted once, e.g. again.flac" in (
        caplog.text
    )


def test_a_data_folder_that_cannot_be_listed_is_an_error(tmp_path, monkeypatch):
    """os.walk skips a folder it cannot list unless told otherwise (root reads every folder,
    so the refusal is simulated)."""
    (tmp_path / "locked").mkdir()
    (tmp_path / "a.flac").write_bytes(b"a")
    scandir = os.scandir

    def refusing(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    message = f"{tmp_path / 'locked'}: cannot list this data folder: permission denied"
    with pytest.raises(ConfigError, match=re.escape(message)):
        scan_audio(tmp_path, "unlabeled", need_labels=False)


def test_an_audio_file_that_may_not_be_read_is_a_planning_error(tmp_path, monkeypatch):
    """Hashing at planning names the file and the cause, not a traceback (root reads every
    file, so the refusal is simulated)."""
    song = tmp_path / "locked.wav"
    sf.write(song, np.zeros(22050, np.float32), 22050)

    def refusing(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr("mirkd.manifest.open", refusing, raising=False)
    message = f"{song}: cannot read this data file: permission denied"
    with pytest.raises(ConfigError, match=re.escape(message)):
        audio_facts([str(song)], tmp_path / "facts.json")


def _labeled_song(folder: Path, name: str, seconds: float, annotation: str, suffix=".lab"):
    """A labeled track: `seconds` of silence and the annotation text beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    audio = folder / f"{name}.wav"
    sf.write(audio, np.zeros(int(8000 * seconds), np.float32), 8000)
    lab = audio.with_suffix(suffix)
    lab.write_text(annotation)
    return Track("labeled", name, str(audio), str(lab))


CHORDLESS_JAMS = json.dumps(
    {
        "file_metadata": {"duration": 10.0},
        "annotations": [
            {
                "namespace": "beat",
                "data": [{"time": 0.0, "duration": 0.0, "value": 1, "confidence": None}],
                "annotation_metadata": {},
                "sandbox": {},
                "time": 0,
                "duration": None,
            }
        ],
        "sandbox": {},
    }
)


def test_every_bad_annotation_is_listed_in_one_error_with_its_cause(tmp_path):
    folder = tmp_path / "labeled"
    tracks = [
        _labeled_song(folder, "good", 10.0, "0 10 C:maj\n"),
        _labeled_song(folder, "late", 10.0, "0 5 C\n5 30 G\n"),  # ends 20 s past the audio
        _labeled_song(folder, "garbled", 10.0, "0 10\n"),
        _labeled_song(folder, "unknown_label", 10.0, "0 10 H:maj\n"),
        _labeled_song(folder, "no_chords", 10.0, CHORDLESS_JAMS, ".jams"),
    ]
    seconds = {
        t.audio: audio_facts([t.audio], tmp_path / "f.json")[t.audio].seconds for t in tracks
    }
    with pytest.raises(ConfigError) as info:
        check_annotations(tracks, seconds, tmp_path / "annotations.json")
    message = str(info.value)
    assert message.startswith("4 annotation file(s)")
    assert f"{folder / 'late.lab'}: annotation ends at 30.000 s but the audio lasts 10.000 s" in (
        message
    )
    assert f"{folder / 'garbled.lab'}:1: expected 'start end label'" in message
    assert f"{folder / 'unknown_label.lab'}:1: chord label 'H:maj'" in message
    assert f"{folder / 'no_chords.jams'}: no 'chord' annotation (namespaces found: beat)" in message
    assert "good.lab" not in message


def test_annotation_checks_are_cached_by_the_files_stat(tmp_path, monkeypatch):
    folder, cache = tmp_path / "labeled", tmp_path / "annotations.json"
    good = _labeled_song(folder, "good", 10.0, "0 10 C:maj\n")
    bad = _labeled_song(folder, "bad", 10.0, "0 10 H:maj\n")
    seconds = {good.audio: 10.0, bad.audio: 10.0}
    with pytest.raises(ConfigError, match="1 annotation file"):
        check_annotations([good, bad], seconds, cache)

    def no_reading(*args, **kwargs):
        raise AssertionError("an unchanged annotation was parsed again")

    monkeypatch.setattr("mirkd.labels.read_annotation", no_reading)
    with pytest.raises(ConfigError, match="bad.lab:1"):  # the cached cause, not parsed again
        check_annotations([good, bad], seconds, cache)
    monkeypatch.undo()
    Path(bad.lab).write_text("0 10 G:min\n")  # fixed: its stat changed, so it is read again
    check_annotations([good, bad], seconds, cache)
    with pytest.raises(ConfigError, match="good.lab: annotation ends at 10.000 s"):
        check_annotations([good], {good.audio: 30.0}, cache)  # other audio: checked again


def _tiny_folders(data: Path) -> Path:
    """Four 2-s songs per set (distinct content), the labeled and test ones annotated."""
    for set_name in ("unlabeled", "labeled", "test"):
        for i in range(4):
            level = (len(set_name) * 10 + i + 1) / 100
            song = data / set_name / f"{set_name}_{i}.wav"
            song.parent.mkdir(parents=True, exist_ok=True)
            sf.write(song, np.full(8000 * 2, level, np.float32), 8000)
            if set_name != "unlabeled":
                song.with_suffix(".lab").write_text("0 2 N\n")
    return data


def test_planning_refuses_a_labeled_annotation_that_does_not_fit_its_audio(tmp_path):
    data = _tiny_folders(tmp_path / "data")
    (data / "test" / "test_3.lab").write_text("0 40 C\n")
    (data / "labeled" / "labeled_1.lab").write_text("0 2 C:nonsense\n")
    with pytest.raises(ConfigError) as info:
        plan_run(resolved_config(tiny_config(data)), str(tmp_path / "results"))
    assert str(info.value).startswith("2 annotation file(s)")
    assert "labeled_1.lab:1" in str(info.value) and "test_3.lab: annotation ends" in str(info.value)


def test_a_labeled_song_too_short_to_use_is_a_planning_error(tmp_path):
    folder = tmp_path / "labeled"
    short = _labeled_song(folder, "short", 0.2, "0 0.2 C:maj\n")
    good = _labeled_song(folder, "good", 10.0, "0 10 C:maj\n")
    seconds = {
        t.audio: audio_facts([t.audio], tmp_path / "f.json")[t.audio].seconds for t in (short, good)
    }
    with pytest.raises(ConfigError) as info:
        check_annotations([short, good], seconds, tmp_path / "annotations.json")
    assert f"{short.audio}: audio too short: 0.200 s < 0.5 s" in str(info.value)
    assert "good" not in str(info.value)


def test_planning_refuses_a_checkpoint_that_is_no_torch_file(tmp_path):
    data = _tiny_folders(tmp_path / "data")
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    cut = tmp_path / "cut.pt"
    with zipfile.ZipFile(cut, "w") as archive:  # what torch.save writes, then cut short
        archive.writestr("archive/data.pkl", b"\x80\x02" + bytes(5000))
    cut.write_bytes(cut.read_bytes()[:2000])
    results = str(tmp_path / "results")
    config = tiny_config(data, teacher={"kind": "btc", "checkpoint": str(text)})
    with pytest.raises(ConfigError, match=re.escape(f"{text} (teacher checkpoint): not a torch")):
        plan_run(resolved_config(config), results)
    config = tiny_config(data)
    config["stage2"]["init"] = str(cut)
    message = f"{cut} (stage2.init): not a complete torch checkpoint: its zip archive is cut"
    with pytest.raises(ConfigError, match=re.escape(message)):
        plan_run(resolved_config(config), results)
    config["stage2"]["init"] = str(tmp_path / "made_later.pt")  # missing: Snakemake's to say
    plan_run(resolved_config(config), results)


def test_planning_refuses_more_unreadable_unlabeled_audio_than_may_be_skipped(tmp_path):
    data = _tiny_folders(tmp_path / "data")
    for i in range(2):
        (data / "unlabeled" / f"unlabeled_{i}.wav").write_text("an HTML page, not audio")
    (data / "unlabeled" / "unlabeled_2.wav").write_bytes(b"")
    config = tiny_config(data)
    config["data"]["max_skipped_fraction"] = 0.5  # 2 of 4 may be skipped, not 3
    with pytest.raises(ConfigError) as info:
        plan_run(resolved_config(config), str(tmp_path / "results"))
    message = str(info.value)
    assert message.startswith("3 of 4 unlabeled audio files have a header that cannot be read")
    assert f"{data / 'unlabeled' / 'unlabeled_2.wav'}: empty file" in message
    assert "data.max_skipped_fraction = 0.5 allows" in message
    (data / "unlabeled" / "unlabeled_2.wav").unlink()  # 2 of 3: the features step skips them
    config["data"]["max_skipped_fraction"] = 0.7
    plan_run(resolved_config(config), str(tmp_path / "results"))


def test_upper_case_annotation_suffixes_are_found_as_audio_suffixes_are(tmp_path):
    folder = tmp_path / "labeled"
    folder.mkdir()
    sf.write(folder / "SONG.FLAC", np.zeros(8000, np.float32), 8000)
    (folder / "SONG.LAB").write_text("0 1 N\n")
    (track,) = scan_audio(folder, "labeled", need_labels=True)
    assert track.lab == str(folder / "SONG.LAB")


def test_a_data_folder_that_is_a_file_is_called_so(tmp_path):
    song = tmp_path / "song.flac"
    song.write_bytes(b"fLaC")
    with pytest.raises(ConfigError, match=re.escape(f"'test' is a file, not a folder: {song}")):
        scan_audio(song, "test", need_labels=True)


def test_planning_refuses_a_stage2_init_of_another_model_than_the_student(tmp_path):
    data = _tiny_folders(tmp_path / "data")
    other, same = tmp_path / "chordnet.pt", tmp_path / "btc.pt"
    save_checkpoint(other, tiny_bundle("chordnet"))
    save_checkpoint(same, tiny_bundle("btc"))  # the student of tiny_config
    config = tiny_config(data)
    config["stage2"]["init"] = str(other)
    message = f"stage2.init: {other} holds a model that differs from the student (arch 'btc'"
    with pytest.raises(ConfigError, match=re.escape(message)):
        plan_run(resolved_config(config), str(tmp_path / "results"))
    config["stage2"]["init"] = str(same)
    plan_run(resolved_config(config), str(tmp_path / "results"))
