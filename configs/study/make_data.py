#!/usr/bin/env python3
"""Render the label-efficiency study's data from POP909 (issue 9), outside the repository.

    python configs/study/make_data.py --out $MIRKD_DATA/study [--jobs 2]

Three disjoint sets of POP909 songs, chosen by a fixed permutation of the song ids:

* test      50 songs, rendered with a soundfont neither the labeled nor the unlabeled songs
            use (the csound GM bank): the fixed test set (`data.test`). FluidR3_GS is not
            usable here: the Debian file holds only the GS variation presets (no bank-0 GM
            presets), so alone it renders silence.
* labeled   48 songs, FluidR3_GM and TimGM6mb: the labeled pool (train + validation split
            by the pipeline; the labeled budgets are nested subsets of its train split).
* unlabeled 180 songs (about 13 h), FluidR3_GM, TimGM6mb, FluidR3Mono and the OPL3 bank:
            the in-domain unlabeled corpus. The renderer writes a .lab for every song; the
            unlabeled ones are deleted before the audio is moved into `unlabeled/`, so no
            rule can ever read them.
* labeled_more  352 further songs for the labeled pool (issue 16: budgets up to 320 training
            songs), same soundfonts as `labeled`, written into `labeled/` too. They come after
            the other sets in the permutation, so the test and unlabeled songs stay the same.

Every song is rendered once, with one soundfont and `--programs random` (per-song GM
instruments). Uses only the soundfonts listed in ../shared/data/README.md (Debian packages).
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
SF2 = Path("/usr/share/sounds/sf2")
SF3 = Path("/usr/share/sounds/sf3")
SOUNDFONTS = {
    "FluidR3_GM": SF2 / "FluidR3_GM.sf2",
    "TimGM6mb": SF2 / "TimGM6mb.sf2",
    "FluidR3Mono": SF3 / "FluidR3Mono_GM.sf3",
    "csoundGM": SF2 / "sf_GMbank.sf2",
    "OPL3": SF2 / "OPL-3_FM_128M.sf2",
}
SETS = {  # name: (number of songs, soundfonts used round-robin)
    "test": (50, ["csoundGM"]),
    "labeled": (48, ["FluidR3_GM", "TimGM6mb"]),
    "unlabeled": (180, ["FluidR3_GM", "TimGM6mb", "FluidR3Mono", "OPL3"]),
    "labeled_more": (352, ["FluidR3_GM", "TimGM6mb"]),
}
FOLDER = {"labeled_more": "labeled"}  # a set written into another set's folder
SEED = 909


def song_sets(songs_dir: Path) -> dict[str, list[str]]:
    """Disjoint song id lists per set from a fixed permutation of the available ids."""
    ids = sorted(d.name for d in songs_dir.iterdir() if d.name.isdigit())
    random.Random(SEED).shuffle(ids)
    out, start = {}, 0
    for name, (n, _) in SETS.items():
        out[name] = sorted(ids[start : start + n])
        start += n
    return out


def render(songs_dir: Path, ids: list[str], sf: str, out: Path, jobs: int) -> None:
    cmd = [
        sys.executable,
        str(SHARED / "tools" / "render_pop909.py"),
        "--pop909",
        str(songs_dir),
        "--ids",
        ",".join(str(int(i)) for i in ids),
        "--out",
        str(out),
        "--sf",
        f"{sf}={SOUNDFONTS[sf]}",
        "--programs",
        "random",
        "--seed",
        f"study-{sf}",
        "--jobs",
        str(jobs),
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--songs", type=Path, default=SHARED / "data" / "pop909" / "songs")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    for sf, path in SOUNDFONTS.items():
        if not path.is_file():
            sys.exit(f"soundfont {sf} missing: {path} (install the Debian package)")
    sets = song_sets(args.songs)
    for name, (_, fonts) in SETS.items():
        dest = args.out / FOLDER.get(name, name)
        done = args.out / f".{name}.done"
        if done.is_file():
            print(f"{name}: rendered into {dest} before, skipped")
            continue
        stage = args.out / f"_render_{name}"
        for k, sf in enumerate(fonts):
            render(args.songs, sets[name][k :: len(fonts)], sf, stage, args.jobs)
        dest.mkdir(parents=True, exist_ok=True)
        for sf in fonts:
            for audio in sorted((stage / sf).glob("*.wav")):
                target = dest / f"{sf}_{audio.name}"
                shutil.move(audio, target)
                if name != "unlabeled":
                    lab = stage / "labs" / f"{audio.stem}.lab"
                    shutil.copyfile(lab, target.with_suffix(".lab"))
        shutil.rmtree(stage)  # the unlabeled songs' .lab files go with it, never read
        done.touch()
        print(f"{name}: {len(sets[name])} songs -> {dest}")


if __name__ == "__main__":
    main()
