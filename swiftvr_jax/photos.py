"""Real photographs for training, taken from Debian's and Ubuntu's desktop-wallpaper packages.

The pip packages ship seven usable stills and one cartoon. The wallpaper packages of Debian and Ubuntu
ship hundreds of real camera photographs (landscapes, plants, water, wood, streets, interiors, night
skies) under CC0, CC-BY, CC-BY-SA, GPL-2+ or LGPL-3 licences; Ubuntu's come mostly from its Free
Culture Showcases. `prepare_photos` downloads the pinned `.deb` files from the archives (package
registries, like PyPI), checks their SHA-256, reads the listed JPEGs out of the archive in Python (no
dpkg, no root), area-downscales each to at most `max_side` pixels and writes `OUT/<name>.png` plus
`OUT/SOURCES.json` (archive, package, version, member path, author, licence).
Train on the result with `--set data.sources=bundled,images:OUT`.

The photo list is `photos.tsv` next to this file: one row per photo (name, package, member, author,
licence, as the package's debian/copyright, or for Plasma each wallpaper's metadata.json, states
them). Only camera photographs are listed: the packages' rendered artwork (gradients, low-poly
scenes, logos, mascots) was left out after a look at contact sheets of every image, and so were
photos under the Unsplash licence (it forbids compiling the photos into a similar service) and
near-duplicates across packages.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import lzma
import os
import tarfile
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

import zstandard
from PIL import Image

ARCHIVES = {"debian": "http://deb.debian.org/debian", "ubuntu": "http://archive.ubuntu.com/ubuntu"}

# package -> (archive, version, pool path under the archive's mirror, size in bytes, SHA-256).
# Debian 12 "bookworm" and Ubuntu 24.04 "noble" (release pockets, which do not change).
PACKAGES = {
    "lomiri-wallpapers-16.04": ("debian",
        "20.04.0-2", "pool/main/l/lomiri-wallpapers/lomiri-wallpapers-16.04_20.04.0-2_all.deb", 15783184,
        "a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab"),
    "lomiri-wallpapers-20.04": ("debian",
        "20.04.0-2", "pool/main/l/lomiri-wallpapers/lomiri-wallpapers-20.04_20.04.0-2_all.deb", 11377208,
        "d44e89b8473aafe64a5b678f014862dc31335aaaf18665c544d985d854f1a709"),
    "mate-backgrounds": ("debian",
        "1.26.0-1", "pool/main/m/mate-backgrounds/mate-backgrounds_1.26.0-1_all.deb", 46638500,
        "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04"),
    "plasma-workspace-wallpapers": ("debian",
        "4:5.27.5-2", "pool/main/p/plasma-workspace-wallpapers/plasma-workspace-wallpapers_5.27.5-2_all.deb",
        94047772, "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b"),
    "ubuntu-wallpapers-noble": ("ubuntu", "24.04.2",
        "pool/main/u/ubuntu-wallpapers/ubuntu-wallpapers-noble_24.04.2_all.deb", 40189796,
        "528c1c7f55a351006ba2372de82c1f005b165cc5742d706a5fff90551dbfb9b0"),
    "ubuntu-mate-wallpapers-photos": ("ubuntu", "24.04.0",
        "pool/universe/u/ubuntu-mate-artwork/ubuntu-mate-wallpapers-photos_24.04.0_all.deb", 27007774,
        "66e1183c767e4c20594e74f7879fd91839457e0f88b2fc8d9cd9b69914628af4"),
    "ubuntu-wallpapers-artful": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-artful_24.04.2_all.deb", 11856290,
        "d5cd00d651cb8b94ddcb7bc04bee6d4983bd6c2211b668d8728b93f806d0d61a"),
    "ubuntu-wallpapers-bionic": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-bionic_24.04.2_all.deb", 37436194,
        "41c161c52d59a307bd8dfb3d666af789892e3830c746a70532b17b0d844301a5"),
    "ubuntu-wallpapers-cosmic": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-cosmic_24.04.2_all.deb", 19159484,
        "3507a1a1aa9f95f5beceefcd0396541f9d677fac81ec20b5df8fd820140767a8"),
    "ubuntu-wallpapers-disco": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-disco_24.04.2_all.deb", 14374564,
        "58a4101c737643742d8f9c585bdfe1c32b53b752f29f6dec4d5ab7a7de20fc2e"),
    "ubuntu-wallpapers-eoan": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-eoan_24.04.2_all.deb", 6718730,
        "50226d00de91e67bdfa37bb338b5cda840593b809261231f5bd6e6c75dd106a2"),
    "ubuntu-wallpapers-focal": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-focal_24.04.2_all.deb", 11830822,
        "a9a886d32e68022d861c879a2e6d2cb8d4f268b91b0faf87100f864cec61a0ef"),
    "ubuntu-wallpapers-impish": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-impish_24.04.2_all.deb", 10229868,
        "749c1f50f6014d61283898a544b6b39219d2600a983e1b7d09ff912cf5a35318"),
    "ubuntu-wallpapers-jammy": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-jammy_24.04.2_all.deb", 23642506,
        "4bc0e9ce2c471184a7d08dbb21980b0fd679fb48afd53d94f728e8299dcde946"),
    "ubuntu-wallpapers-karmic": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-karmic_24.04.2_all.deb", 5344428,
        "9c3753798ed94910e258cad4cd44fddbdacc419d157163c55151fe99ade8a2d6"),
    "ubuntu-wallpapers-kinetic": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-kinetic_24.04.2_all.deb", 15222022,
        "e4ee73ba38806cfab6688bf9dbf89b3a1c69bccc0f44e95a8b5c7063a2e2f1f2"),
    "ubuntu-wallpapers-lucid": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-lucid_24.04.2_all.deb", 3866496,
        "60d9eb9106db3625aaf0ff5ccb5435ba4af2b36be5177b5539a7322544729bbb"),
    "ubuntu-wallpapers-lunar": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-lunar_24.04.2_all.deb", 47554094,
        "196e81cd6a24690e5347b6657bba328ce19038fc08a85fbabff5d1185b63f8cf"),
    "ubuntu-wallpapers-mantic": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-mantic_24.04.2_all.deb", 71658534,
        "8b278872c54ab00dafecc00479af2461ebc7753e79fb374aac06f0f291a8b8d5"),
    "ubuntu-wallpapers-maverick": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-maverick_24.04.2_all.deb", 2465810,
        "fe156343bb8c137cd9c60944c966797c0398a69f44b530c48f3ee1cd221a71cc"),
    "ubuntu-wallpapers-natty": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-natty_24.04.2_all.deb", 2845534,
        "b847e9ae336c052e6886b9c6a6ea705f9573a05d424e3a5245f7e4e2c3c0eef1"),
    "ubuntu-wallpapers-oneiric": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-oneiric_24.04.2_all.deb", 2303574,
        "a093acbd96e5a6a5548ee222488fb6cb847db4c907d7d03022f68504354af47e"),
    "ubuntu-wallpapers-precise": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-precise_24.04.2_all.deb", 2521080,
        "8334c9f850fe81b177f1da4b48e01e91ad4e050bedace3eed80b1a57cf969a99"),
    "ubuntu-wallpapers-quantal": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-quantal_24.04.2_all.deb", 3408356,
        "72d26debbb5399e0d85162274d3f1801cce6ba2dc1aaf65a019d537a503ee915"),
    "ubuntu-wallpapers-raring": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-raring_24.04.2_all.deb", 2228262,
        "bb2b51bd5782cba5a59bc9ac35fa6e2d489ce54765c6f96c93a10febb728a444"),
    "ubuntu-wallpapers-saucy": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-saucy_24.04.2_all.deb", 4617104,
        "b073e529ed5692331070f07ed414cb9c0bc29f5d5c2fea0e12623f4af64b2965"),
    "ubuntu-wallpapers-trusty": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-trusty_24.04.2_all.deb", 8105612,
        "7205d50b22c798c0283fb898107a64635a0140deeb20612590bf171e8bd80c30"),
    "ubuntu-wallpapers-utopic": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-utopic_24.04.2_all.deb", 9810070,
        "0434146b5dbbe5e1536598e9f0c9a1c1e0eae00871bd99f1704316b0fe2bc91d"),
    "ubuntu-wallpapers-vivid": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-vivid_24.04.2_all.deb", 15074452,
        "fc39e00513700c891c3f830af79b3f99e5fd3015f0541e4f8764b8fd826fd10b"),
    "ubuntu-wallpapers-wily": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-wily_24.04.2_all.deb", 14369036,
        "a9a0c7588f3b7809c56191b4bbb1eef49db309146e6b920b097da7783f88267b"),
    "ubuntu-wallpapers-xenial": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-xenial_24.04.2_all.deb", 17138258,
        "91dd950ae93ce32307cc63efb73f5b05667535e5792ed7b69e38f869127cd3c5"),
    "ubuntu-wallpapers-yakkety": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-yakkety_24.04.2_all.deb", 11098718,
        "d00fcdc9326cbe11d2893a45f616ac31af96ed1752eac880c069bfc27e3c2412"),
    "ubuntu-wallpapers-zesty": ("ubuntu", "24.04.2",
        "pool/universe/u/ubuntu-wallpapers/ubuntu-wallpapers-zesty_24.04.2_all.deb", 11307606,
        "7b7ade52a3bedb3c9073453e760f9fcd991af329897f771e66a350c969264819"),
    "xubuntu-community-wallpapers-bionic": ("ubuntu", "22.04.0",
        "pool/universe/x/xubuntu-community-artwork/xubuntu-community-wallpapers-bionic_22.04.0_all.deb", 17550164,
        "f02ca97910121571660cadca5a7802fadfbb6df719fa5bc4be812ae5304674d8"),
    "xubuntu-community-wallpapers-focal": ("ubuntu", "22.04.0",
        "pool/universe/x/xubuntu-community-artwork/xubuntu-community-wallpapers-focal_22.04.0_all.deb", 17151900,
        "02a97d11a78c81ccbd0021476f4c3df7bbaf97f2326664f1ee1ff953b0a4c890"),
    "xubuntu-community-wallpapers-jammy": ("ubuntu", "22.04.0",
        "pool/universe/x/xubuntu-community-artwork/xubuntu-community-wallpapers-jammy_22.04.0_all.deb", 28652394,
        "dbbe3e16f2ce381b07113bafda8354dd40e602dd482815cac8432e2b56a3ec7b"),
    "xubuntu-community-wallpapers-trusty": ("ubuntu", "22.04.0",
        "pool/universe/x/xubuntu-community-artwork/xubuntu-community-wallpapers-trusty_22.04.0_all.deb", 9498090,
        "7524125f9fcdcf09275d94ef305afe0c492d407152fb15b2784de735329a7de5"),
    "xubuntu-community-wallpapers-xenial": ("ubuntu", "22.04.0",
        "pool/universe/x/xubuntu-community-artwork/xubuntu-community-wallpapers-xenial_22.04.0_all.deb", 19884566,
        "35eb5566f61fbf159b8346a6c942db150de90ce5d4642013399ffb5cea54ae75"),
}


def load_photos(path: str = os.path.join(os.path.dirname(__file__), "photos.tsv")) -> tuple[tuple[str, ...], ...]:
    """The rows (name, package, member path, author, licence) of the photo table."""
    with open(path, encoding="utf-8") as f:
        rows = tuple(tuple(line.rstrip("\n").split("\t")) for line in f if line.strip() and not line.startswith("#"))
    bad = [r for r in rows if len(r) != 5]
    if bad:
        raise ValueError(f"{path}: rows need 5 tab-separated fields: {bad[0]}")
    return rows


PHOTOS = load_photos()


class PhotoError(Exception):
    """A download, checksum or archive problem, with what to do about it."""


def mirror_for(package: str, mirrors: Mapping[str, str] | None = None, *,
               packages: Mapping[str, tuple] | None = None) -> str:
    """The mirror URL `package` is fetched from: mirrors[its archive] if given, else ARCHIVES[its archive].

    packages: the pin table `package` is in (default PACKAGES).
    """
    archive = (PACKAGES if packages is None else packages)[package][0]
    return (mirrors or {}).get(archive) or ARCHIVES[archive]


def fetch_deb(package: str, cache: str, *, mirrors: Mapping[str, str] | None = None,
              packages: Mapping[str, tuple] | None = None) -> str:
    """Path of `package`'s pinned .deb in `cache`, downloaded from its archive unless a verified copy is there.

    mirrors: {archive: URL} overriding ARCHIVES, e.g. {"debian": "http://ftp.de.debian.org/debian"}.
    packages: the pin table {package: (archive, version, pool path, size, SHA-256)} (default PACKAGES).
    """
    packages = PACKAGES if packages is None else packages
    archive, version, pool, size, sha256 = packages[package]
    path = os.path.join(cache, os.path.basename(pool))
    if os.path.exists(path) and _sha256(path) == sha256:
        return path
    os.makedirs(cache, exist_ok=True)
    url = f"{mirror_for(package, mirrors, packages=packages).rstrip('/')}/{pool}"
    partial = os.path.join(cache, "." + os.path.basename(pool) + ".partial")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as f:
            while block := response.read(1 << 20):
                f.write(block)
    except OSError as e:
        raise PhotoError(f"cannot download {url} ({e}); check the network, pass another --mirror {archive}=URL, "
                         f"or put {os.path.basename(pool)} (size {size}) into {cache}") from None
    if (got := _sha256(partial)) != sha256:
        os.remove(partial)
        raise PhotoError(f"{url} has SHA-256 {got}, expected {sha256} ({package} {version}); "
                         f"try another --mirror {archive}=URL")
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
    if payload is None or payload[0] not in ("data.tar.xz", "data.tar.zst", "data.tar.gz", "data.tar"):
        raise PhotoError(f"{deb}: no data.tar.xz/.zst/.gz inside (found {payload and payload[0]})")
    if payload[0].endswith(".xz"):
        raw = lzma.decompress(payload[1])
    elif payload[0].endswith(".zst"):  # Ubuntu's packages; tarfile reads .gz itself
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload[1])).read()
    else:
        raw = payload[1]
    out = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tar:
        for member in names:
            try:
                out[member] = tar.extractfile(member).read()
            except (KeyError, AttributeError):
                raise PhotoError(f"{deb} has no file {member}") from None
    return out


def prepare_photos(out: str, *, cache: str | None = None, max_side: int = 2048,
                   mirrors: Mapping[str, str] | None = None, archives: Sequence[str] | None = None,
                   progress=None) -> list[dict[str, Any]]:
    """Write every photo of PHOTOS as OUT/<name>.png (RGB, longer side <= max_side) and OUT/SOURCES.json.

    cache: where the .deb files go (default OUT/debs); a verified copy there is not downloaded again.
    mirrors: {archive: URL} overriding ARCHIVES. archives: only the photos of these archives (default: all).
    progress: optional callable(str) told of each package. Returns the SOURCES.json records.
    """
    cache = cache or os.path.join(out, "debs")
    os.makedirs(out, exist_ok=True)
    records = []
    for package, (archive, *_) in PACKAGES.items():
        if archives is not None and archive not in archives:
            continue
        wanted = [p for p in PHOTOS if p[1] == package]
        if progress:
            progress(package)
        members = deb_members(fetch_deb(package, cache, mirrors=mirrors), [p[2] for p in wanted])
        for name, _, member, author, licence in wanted:
            image = Image.open(io.BytesIO(members[member])).convert("RGB")
            original = image.size
            factor = max_side / max(image.size)
            if factor < 1:  # a box filter averages sensor noise and JPEG blocks away, as an area resize does
                image = image.resize((round(image.width * factor), round(image.height * factor)), Image.BOX)
            image.save(os.path.join(out, f"{name}.png"))
            records.append({"name": name, "file": f"{name}.png", "size": list(image.size),
                            "original_size": list(original), "archive": archive, "package": package,
                            "version": PACKAGES[package][1],
                            "member": member, "author": author, "licence": licence})
    with open(os.path.join(out, "SOURCES.json"), "w") as f:
        json.dump({"mirrors": {a: (mirrors or {}).get(a) or url for a, url in ARCHIVES.items()},
                   "max_side": max_side, "photos": records}, f, indent=1, ensure_ascii=False)
    return records


def licence_counts(records: Sequence[Mapping[str, Any]]) -> str:
    """'2 CC0-1.0, 1 MIT': how many SOURCES.json records carry each licence, licences sorted."""
    counts = collections.Counter(r["licence"] for r in records)
    return ", ".join(f"{n} {lic}" for lic, n in sorted(counts.items()))


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


__all__ = ["ARCHIVES", "PACKAGES", "PHOTOS", "PhotoError", "deb_members", "fetch_deb", "licence_counts", "load_photos",
           "mirror_for", "prepare_photos"]
