"""Unity .meta files for the package (a package installed from a git URL is immutable, and
Unity ignores assets that have no .meta there). GUIDs derive from the path, so re-running
gives the same files.

    python3 tools~/meta.py          # write missing .meta files
    python3 tools~/meta.py --check  # exit 1 listing assets without one (run-tests.sh)
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TAIL = "  externalObjects: {}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n"
MONO = ("MonoImporter:\n  externalObjects: {}\n  serializedVersion: 2\n  defaultReferences: []\n  executionOrder: 0\n"
        "  icon: {instanceID: 0}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n")


def skipped(rel: Path) -> bool:
    # Unity does not import names ending in ~ or starting with a dot, nor .meta files.
    return any(p.endswith("~") or p.startswith(".") for p in rel.parts) or rel.suffix == ".meta"


def importer(path: Path) -> str:
    if path.is_dir():
        return "folderAsset: yes\nDefaultImporter:\n" + TAIL
    if path.suffix == ".cs":
        return MONO
    if path.suffix == ".asmdef":
        return "AssemblyDefinitionImporter:\n" + TAIL
    if path.name == "package.json":
        return "PackageManifestImporter:\n" + TAIL
    if path.suffix in (".md", ".json", ".txt"):
        return "TextScriptImporter:\n" + TAIL
    return "DefaultImporter:\n" + TAIL


def assets() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*") if not skipped(p.relative_to(ROOT)))


def main() -> int:
    missing = [p for p in assets() if not Path(str(p) + ".meta").exists()]
    if "--check" in sys.argv:
        for p in missing:
            print(f"no .meta: {p.relative_to(ROOT)}")
        return 1 if missing else 0
    for p in missing:
        guid = hashlib.md5(("com.entitybridge.sdk/" + str(p.relative_to(ROOT))).encode()).hexdigest()
        Path(str(p) + ".meta").write_text(f"fileFormatVersion: 2\nguid: {guid}\n{importer(p)}")
        print(f"wrote {p.relative_to(ROOT)}.meta")
    return 0


if __name__ == "__main__":
    sys.exit(main())
