"""train.photos: fetch the real training photographs (Debian wallpaper packages) into a folder.

    python -m train.photos --out data/photos
    python -m train.photos --out data/photos --mirror http://ftp.de.debian.org/debian

Downloads four pinned Debian packages (about 168 MB, SHA-256 checked; kept in OUT/debs so a second
run downloads nothing), writes 37 downscaled photographs as OUT/<name>.png and OUT/SOURCES.json
(package, author and licence of each). Then train with `--set data.sources=bundled,images:OUT`.
"""

from __future__ import annotations

import argparse
import collections
import sys

from swiftvr_jax.photos import DEBIAN_MIRROR, PhotoError, prepare_photos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.photos", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for the PNGs and SOURCES.json")
    parser.add_argument("--cache", help="folder for the .deb files (default OUT/debs)")
    parser.add_argument("--mirror", default=DEBIAN_MIRROR, help="Debian mirror (default %(default)s)")
    parser.add_argument("--max-side", type=int, default=2048, help="longer side of each photo, pixels")
    args = parser.parse_args(argv)
    try:
        records = prepare_photos(args.out, cache=args.cache, max_side=args.max_side, mirror=args.mirror,
                                 progress=lambda p: print(f"photos: {p}", flush=True))
    except PhotoError as e:
        print(f"train.photos: {e}", file=sys.stderr)
        return 2
    licences = collections.Counter(r["licence"] for r in records)
    print(f"photos: {len(records)} photos in {args.out} ("
          + ", ".join(f"{n} {lic}" for lic, n in sorted(licences.items())) + "); sources in SOURCES.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
