"""train.photos: fetch the real training photographs (Debian wallpaper packages) into a folder.

    python -m train.photos --out data/photos
    python -m train.photos --out data/photos --mirror debian=http://ftp.de.debian.org/debian
    python -m train.photos --out data/photos-debian --archive debian   # only the 37 Debian photos

Downloads the pinned Debian and Ubuntu wallpaper packages (4 + 34 packages, about 690 MB, SHA-256
checked; kept in OUT/debs so a second run downloads nothing), writes 344 downscaled photographs as
OUT/<name>.png and OUT/SOURCES.json (package, author and licence of each). Then train with
`--set data.sources=bundled,images:OUT`.
"""

from __future__ import annotations

import argparse
import sys

from swiftvr_jax.photos import ARCHIVES, PhotoError, licence_counts, prepare_photos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.photos", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for the PNGs and SOURCES.json")
    parser.add_argument("--cache", help="folder for the .deb files (default OUT/debs)")
    parser.add_argument("--mirror", action="append", default=[], metavar="[ARCHIVE=]URL",
                        help="mirror of an archive (" + ", ".join(f"{a}: {u}" for a, u in ARCHIVES.items())
                        + "); a bare URL is a Debian mirror; repeatable")
    parser.add_argument("--archive", action="append", choices=sorted(ARCHIVES),
                        help="only the photos of this archive (repeatable; default: all)")
    parser.add_argument("--max-side", type=int, default=2048, help="longer side of each photo, pixels")
    args = parser.parse_args(argv)
    mirrors = {}
    for spec in args.mirror:
        archive, _, url = spec.partition("=") if spec.split("=", 1)[0] in ARCHIVES else ("", "", spec)
        mirrors[archive or "debian"] = url
    try:
        records = prepare_photos(args.out, cache=args.cache, max_side=args.max_side, mirrors=mirrors,
                                 archives=args.archive,
                                 progress=lambda p: print(f"photos: {p}", flush=True))
    except PhotoError as e:
        print(f"train.photos: {e}", file=sys.stderr)
        return 2
    print(f"photos: {len(records)} photos in {args.out} ("
          + licence_counts(records) + "); sources in SOURCES.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
