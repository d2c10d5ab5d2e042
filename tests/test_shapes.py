"""The named records the steps pass around: one shape per idea."""

from __future__ import annotations

import pickle

import pytest

from mirkd.errors import MirkdError
from mirkd.manifest import TrackFiles


def test_track_files_round_trip_through_rule_params():
    track = TrackFiles("song-1234abcd", "a/song.flac", "results/features/labeled/x.h5",
                       "a/song.lab", "sha1")
    params = [track.to_param()]
    assert params == [{"track_id": "song-1234abcd", "audio": "a/song.flac",
                       "features": "results/features/labeled/x.h5", "lab": "a/song.lab",
                       "fingerprint": "sha1"}]
    assert TrackFiles.from_params(params) == [track]
    assert pickle.loads(pickle.dumps(track)) == track
    assert track.annotation == "a/song.lab"
    with pytest.raises(MirkdError, match="no annotation"):
        _ = TrackFiles("u", "u.wav", "u.h5", None, "fp").annotation
