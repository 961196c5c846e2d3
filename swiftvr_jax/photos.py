"""Real photographs for training, taken from Debian's desktop-wallpaper packages.

The pip packages ship seven usable stills and one cartoon. These Debian packages ship dozens of
real camera photographs (landscapes, plants, water, wood, interiors) under CC0, CC-BY, CC-BY-SA,
GPL-2+ or LGPL-3 licences. `prepare_photos` downloads the pinned `.deb` files from a Debian mirror
(a package registry, like PyPI), checks their SHA-256, reads the listed JPEGs out of the archive
in Python (no dpkg, no root), area-downscales each to at most `max_side` pixels and writes
`OUT/<name>.png` plus `OUT/SOURCES.json` (package, version, member path, author, licence).
Train on the result with `--set data.sources=bundled,images:OUT`.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import tarfile
import urllib.request
from collections.abc import Sequence
from typing import Any

from PIL import Image

DEBIAN_MIRROR = "http://deb.debian.org/debian"

# package -> (version, pool path under the mirror, size in bytes, SHA-256); Debian 12 "bookworm".
PACKAGES = {
    "lomiri-wallpapers-16.04": (
        "20.04.0-2", "pool/main/l/lomiri-wallpapers/lomiri-wallpapers-16.04_20.04.0-2_all.deb", 15783184,
        "a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab"),
    "lomiri-wallpapers-20.04": (
        "20.04.0-2", "pool/main/l/lomiri-wallpapers/lomiri-wallpapers-20.04_20.04.0-2_all.deb", 11377208,
        "d44e89b8473aafe64a5b678f014862dc31335aaaf18665c544d985d854f1a709"),
    "mate-backgrounds": (
        "1.26.0-1", "pool/main/m/mate-backgrounds/mate-backgrounds_1.26.0-1_all.deb", 46638500,
        "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04"),
    "plasma-workspace-wallpapers": (
        "4:5.27.5-2", "pool/main/p/plasma-workspace-wallpapers/plasma-workspace-wallpapers_5.27.5-2_all.deb",
        94047772, "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b"),
}

_LOMIRI = "./usr/share/backgrounds/"
_MATE = "./usr/share/backgrounds/mate/nature/"
_PLASMA = "./usr/share/wallpapers/{}/contents/images/2560x1600.jpg"

# (name, package, member path, author, licence), as each package's debian/copyright (or, for Plasma,
# each wallpaper's metadata.json) states them. Only camera photographs: the packages' rendered
# artwork (gradients, low-poly scenes, logos) is left out.
PHOTOS = (
    ("bridge", "lomiri-wallpapers-16.04", _LOMIRI + "Bridge_by_Sander_Klootwijk.jpg", "Sander Klootwijk", "CC-BY-SA-4.0"),
    ("dragonfly", "lomiri-wallpapers-16.04", _LOMIRI + "Dragonfly_by_Bolly.jpg", "Bolly", "CC-BY-SA-4.0"),
    ("fig", "lomiri-wallpapers-16.04", _LOMIRI + "Picture_0B_by_freespace.jpg", "Trevor \"Freespace\"", "CC-BY-4.0"),
    ("brushes", "lomiri-wallpapers-16.04", _LOMIRI + "Picture_1A_by_freespace.jpg", "Trevor \"Freespace\"",
     "CC-BY-4.0"),
    ("wine", "lomiri-wallpapers-16.04", _LOMIRI + "Wine_by_Jakkub_Mede.jpg", "Jakub Mede", "CC-BY-4.0"),
    ("aitzgorri", "lomiri-wallpapers-16.04", _LOMIRI + "aitzgorri_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi",
     "CC-BY-4.0"),
    ("lamps", "lomiri-wallpapers-16.04", _LOMIRI + "free_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0"),
    ("friends", "lomiri-wallpapers-16.04", _LOMIRI + "friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi",
     "CC-BY-4.0"),
    ("clock", "lomiri-wallpapers-16.04", _LOMIRI + "greentock_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0"),
    ("stream", "lomiri-wallpapers-16.04", _LOMIRI + "life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi",
     "CC-BY-4.0"),
    ("picos", "lomiri-wallpapers-16.04", _LOMIRI + "picosdeeuropa_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi",
     "CC-BY-4.0"),
    ("dandelions", "lomiri-wallpapers-16.04", _LOMIRI + "seeding_by_Clements_Engelhardt.jpg", "Clemens Engelhardt",
     "CC0-1.0"),
    ("sunset", "lomiri-wallpapers-16.04", _LOMIRI + "sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi",
     "CC-BY-4.0"),
    ("nuthatch", "lomiri-wallpapers-20.04", _LOMIRI + "Kleiber_by_Lukas_Baubkus.jpg", "Lukas Baubkus",
     "CC-BY-SA-3.0"),
    ("aqua", "mate-backgrounds", _MATE + "Aqua.jpg", "Charles Barbin", "GPL-2+"),
    ("blinds", "mate-backgrounds", _MATE + "Blinds.jpg", "Lennart Poettering, Andrea Cimitan", "GPL-2+"),
    ("dune", "mate-backgrounds", _MATE + "Dune.jpg", "Marco Cogoni, Hylke Bons", "GPL-2+"),
    ("fresh-flower", "mate-backgrounds", _MATE + "FreshFlower.jpg", "Jens Ansorg", "GPL-2+"),
    ("garden", "mate-backgrounds", _MATE + "Garden.jpg", "Charles Barbin", "GPL-2+"),
    ("meadow", "mate-backgrounds", _MATE + "GreenMeadow.jpg", "Timothy Schellhase, Lapo Calamandrei", "GPL-2+"),
    ("ladybird", "mate-backgrounds", _MATE + "LadyBird.jpg", "Charles Barbin", "GPL-2+"),
    ("raindrops", "mate-backgrounds", _MATE + "RainDrops.jpg", "\"blackcombwhistler07\"", "GPL-2+"),
    ("storm", "mate-backgrounds", _MATE + "Storm.jpg", "Sergey Nazarov", "GPL-2+"),
    ("two-wings", "mate-backgrounds", _MATE + "TwoWings.jpg", "Charles Barbin, Hylke Bons", "GPL-2+"),
    ("wood", "mate-backgrounds", _MATE + "Wood.jpg", "Jean-François Fortin Tam", "GPL-2+"),
    ("yellow-flower", "mate-backgrounds", _MATE + "YellowFlower.jpg", "Charles Barbin", "GPL-2+"),
    ("by-the-water", "plasma-workspace-wallpapers", _PLASMA.format("BytheWater"), "Maciej Wiklo", "LGPL-3.0"),
    ("cold-ripple", "plasma-workspace-wallpapers", _PLASMA.format("ColdRipple"), "Risto Saukonpää", "LGPL-3.0"),
    ("colorful-cups", "plasma-workspace-wallpapers", _PLASMA.format("ColorfulCups"), "Dmitri Popov", "LGPL-3.0"),
    ("darkest-hour", "plasma-workspace-wallpapers", _PLASMA.format("DarkestHour"), "Risto Saukonpää", "LGPL-3.0"),
    ("evening-glow", "plasma-workspace-wallpapers", _PLASMA.format("EveningGlow"), "Ian Hex", "LGPL-3.0"),
    ("fallen-leaf", "plasma-workspace-wallpapers", _PLASMA.format("FallenLeaf"), "Martin Klapetek", "LGPL-3.0"),
    ("grey", "plasma-workspace-wallpapers", _PLASMA.format("Grey"), "Sigi Sagi", "LGPL-3.0"),
    ("kite", "plasma-workspace-wallpapers", _PLASMA.format("Kite"), "Risto Saukonpää", "LGPL-3.0"),
    ("one-stands-out", "plasma-workspace-wallpapers", _PLASMA.format("OneStandsOut"), "Risto Saukonpää",
     "LGPL-3.0"),
    ("path", "plasma-workspace-wallpapers", _PLASMA.format("Path"), "Risto Saukonpää", "LGPL-3.0"),
    ("summer-1am", "plasma-workspace-wallpapers", _PLASMA.format("summer_1am"), "Risto Saukonpää", "LGPL-3.0"),
)


class PhotoError(Exception):
    """A download, checksum or archive problem, with what to do about it."""


def fetch_deb(package: str, cache: str, *, mirror: str = DEBIAN_MIRROR) -> str:
    """Path of `package`'s pinned .deb in `cache`, downloaded from `mirror` unless a verified copy is there."""
    version, pool, size, sha256 = PACKAGES[package]
    path = os.path.join(cache, os.path.basename(pool))
    if os.path.exists(path) and _sha256(path) == sha256:
        return path
    os.makedirs(cache, exist_ok=True)
    url = f"{mirror.rstrip('/')}/{pool}"
    partial = os.path.join(cache, "." + os.path.basename(pool) + ".partial")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as f:
            while block := response.read(1 << 20):
                f.write(block)
    except OSError as e:
        raise PhotoError(f"cannot download {url} ({e}); check the network, pass another --mirror, or put "
                         f"{os.path.basename(pool)} (size {size}) into {cache}") from None
    if (got := _sha256(partial)) != sha256:
        os.remove(partial)
        raise PhotoError(f"{url} has SHA-256 {got}, expected {sha256} ({package} {version}); try another --mirror")
    os.replace(partial, path)
    return path


def deb_members(deb: str, names: Sequence[str]) -> dict[str, bytes]:
    """{member path: bytes} of the files `names` (as `dpkg-deb -c` lists them) inside the .deb `deb`."""
    with open(deb, "rb") as f:
        data = f.read()
    if data[:8] != b"!<arch>\n":
        raise PhotoError(f"{deb} is not a Debian package (no ar header); delete it and run again")
    pos, payload = 8, None
    while pos + 60 <= len(data):  # ar: 60-byte headers, name in bytes 0-16, decimal size in 48-58
        name, size = data[pos:pos + 16].decode().strip().rstrip("/"), int(data[pos + 48:pos + 58])
        if name.startswith("data.tar"):
            payload = (name, data[pos + 60:pos + 60 + size])
            break
        pos += 60 + size + (size & 1)
    if payload is None or payload[0] not in ("data.tar.xz", "data.tar.gz", "data.tar"):
        raise PhotoError(f"{deb}: no data.tar.xz/.gz inside (found {payload and payload[0]})")
    raw = lzma.decompress(payload[1]) if payload[0].endswith(".xz") else payload[1]
    out = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tar:
        for member in names:
            try:
                out[member] = tar.extractfile(member).read()
            except (KeyError, AttributeError):
                raise PhotoError(f"{deb} has no file {member}") from None
    return out


def prepare_photos(out: str, *, cache: str | None = None, max_side: int = 2048, mirror: str = DEBIAN_MIRROR,
                   progress=None) -> list[dict[str, Any]]:
    """Write every photo of PHOTOS as OUT/<name>.png (RGB, longer side <= max_side) and OUT/SOURCES.json.

    cache: where the .deb files go (default OUT/debs); a verified copy there is not downloaded again.
    progress: optional callable(str) told of each package. Returns the SOURCES.json records.
    """
    cache = cache or os.path.join(out, "debs")
    os.makedirs(out, exist_ok=True)
    records = []
    for package in PACKAGES:
        wanted = [p for p in PHOTOS if p[1] == package]
        if progress:
            progress(package)
        members = deb_members(fetch_deb(package, cache, mirror=mirror), [p[2] for p in wanted])
        for name, _, member, author, licence in wanted:
            image = Image.open(io.BytesIO(members[member])).convert("RGB")
            original = image.size
            factor = max_side / max(image.size)
            if factor < 1:  # a box filter averages sensor noise and JPEG blocks away, as an area resize does
                image = image.resize((round(image.width * factor), round(image.height * factor)), Image.BOX)
            image.save(os.path.join(out, f"{name}.png"))
            records.append({"name": name, "file": f"{name}.png", "size": list(image.size),
                            "original_size": list(original), "package": package, "version": PACKAGES[package][0],
                            "member": member, "author": author, "licence": licence})
    with open(os.path.join(out, "SOURCES.json"), "w") as f:
        json.dump({"mirror": mirror, "max_side": max_side, "photos": records}, f, indent=1, ensure_ascii=False)
    return records


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


__all__ = ["DEBIAN_MIRROR", "PACKAGES", "PHOTOS", "PhotoError", "deb_members", "fetch_deb", "prepare_photos"]
