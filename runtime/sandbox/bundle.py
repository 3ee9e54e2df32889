"""Locate, fetch and verify Postman's script sandbox bundle.

pmrunner runs collection scripts with Postman's own open-source sandbox
(npm package ``postman-sandbox``, Apache-2.0). Its published tarball ships a
prebuilt browser bundle, ``.cache/bootcode.browser.js``, which holds the
``pm`` API, chai, chai-postman and the libraries scripts ``require``.

The bundle is fetched once, at build or install time, with the ordinary npm
client (``npm pack``, so a company's npm mirror and proxy settings apply) or
from a local tarball named by ``PMRUNNER_SANDBOX_TARBALL``. The tarball's
integrity and the bundle's digest are checked against the pins below, and the
bundle is written next to this module. Nothing is fetched at run time.

This module uses the standard library only: the build hook imports it by path.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "postman-sandbox"
VERSION = "6.7.4"
TARBALL_INTEGRITY = (
    "sha512-"
    "gJqcrdbsSVpfCHvwindV5IUbZt9ThV77ChUVdhMvdtBLydxFhmvdnqiE3tTIPgLEqjAYVRHw8h7iobLNMVUMlQ=="
)
BUNDLE_MEMBER = "package/.cache/bootcode.browser.js"
BUNDLE_SHA256 = "c932ff5398b84324e4838cdac1513878a54253c387bf4025d0dd5f7e030bc5c9"
VENDOR_DIR = Path(__file__).resolve().parent / "vendor"
BUNDLE_PATH = VENDOR_DIR / f"{PACKAGE}-{VERSION}.browser.js"
TARBALL_ENV = "PMRUNNER_SANDBOX_TARBALL"


class BundleError(RuntimeError):
    """The sandbox bundle is missing or does not match its pinned digest."""


def _check_integrity(data: bytes) -> None:
    algorithm, _, expected = TARBALL_INTEGRITY.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        raise BundleError(
            f"{PACKAGE}@{VERSION} tarball failed its integrity check "
            f"(expected {TARBALL_INTEGRITY}, got {algorithm}-{actual})"
        )


def _npm_pack() -> bytes:
    npm = shutil.which("npm")
    if npm is None:
        raise BundleError(
            f"npm is needed once, at install time, to fetch {PACKAGE}@{VERSION}; "
            f"install Node.js/npm or set {TARBALL_ENV} to a downloaded tarball"
        )
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{VERSION}", "--silent"],
            cwd=workdir,
            capture_output=True,
            text=True,
            check=False,
        )
        tarballs = list(Path(workdir).glob("*.tgz"))
        if proc.returncode != 0 or len(tarballs) != 1:
            raise BundleError(f"npm pack {PACKAGE}@{VERSION} failed: {proc.stderr.strip()}")
        return tarballs[0].read_bytes()


def _extract_bundle(tarball: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        member = archive.extractfile(BUNDLE_MEMBER)
        if member is None:
            raise BundleError(f"{BUNDLE_MEMBER} is missing from the {PACKAGE} tarball")
        return member.read()


def _verify_bundle(code: bytes) -> None:
    digest = hashlib.sha256(code).hexdigest()
    if digest != BUNDLE_SHA256:
        raise BundleError(f"sandbox bundle digest {digest} does not match the pin {BUNDLE_SHA256}")


def ensure_bundle() -> Path:
    """Make sure the verified bundle is on disk and return its path.

    Fetches the tarball only when the bundle is absent or does not verify.
    """
    if BUNDLE_PATH.exists():
        try:
            _verify_bundle(BUNDLE_PATH.read_bytes())
            return BUNDLE_PATH
        except BundleError:
            BUNDLE_PATH.unlink()
    local = os.environ.get(TARBALL_ENV)
    tarball = Path(local).read_bytes() if local else _npm_pack()
    _check_integrity(tarball)
    code = _extract_bundle(tarball)
    _verify_bundle(code)
    VENDOR_DIR.mkdir(parents=True, exist_ok=True)
    partial = BUNDLE_PATH.with_suffix(".partial")
    partial.write_bytes(code)
    partial.replace(BUNDLE_PATH)
    return BUNDLE_PATH


def installed_bundle() -> Path:
    """Return the path of the installed bundle, or say how to install it."""
    if not BUNDLE_PATH.exists():
        raise BundleError(
            f"the script sandbox ({PACKAGE}@{VERSION}) is not installed; reinstall pmrunner "
            f"or run `python -m runtime.sandbox.bundle` with npm available"
        )
    return BUNDLE_PATH


if __name__ == "__main__":
    print(ensure_bundle())
