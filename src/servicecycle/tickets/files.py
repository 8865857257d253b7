"""What a file is, from its name and first bytes: refuse what must never be served. Pure."""

from __future__ import annotations

import mimetypes
import re
import unicodedata

from servicecycle.kit.errors import UnsupportedType, ValidationFailed

# Files a browser or an operating system would run rather than show.
BLOCKED_EXTENSIONS = frozenset(
    {
        "exe",
        "dll",
        "com",
        "bat",
        "cmd",
        "msi",
        "msp",
        "scr",
        "pif",
        "cpl",
        "vbs",
        "vbe",
        "js",
        "jse",
        "wsf",
        "wsh",
        "ps1",
        "psm1",
        "hta",
        "jar",
        "apk",
        "app",
        "dmg",
        "sh",
        "reg",
        "lnk",
        "iso",
    }
)
# Magic numbers of the types that must be what they claim to be (they are shown inline).
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
}
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def clean_filename(name: str) -> str:
    """A safe display and download name: no path, no control characters, at most 255 chars."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_CHARS.sub("_", name).strip(" .")
    if not name:
        raise ValidationFailed("The file needs a name", fields={"file": "no file name"})
    stem, dot, ext = name.rpartition(".")
    return (stem[: 250 - len(ext)] + dot + ext) if len(name) > 255 else name


def check_file(filename: str, declared_type: str | None, head: bytes) -> str:
    """The content type to store; refuses executables and images that are not images."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension in BLOCKED_EXTENSIONS:
        raise UnsupportedType(
            f"{extension} files are not accepted", fields={"file": f".{extension}"}
        )
    content_type = (declared_type or "").split(";")[0].strip().lower()
    if not content_type or content_type == "application/octet-stream":
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if content_type in ("application/x-msdownload", "application/x-sh", "text/javascript"):
        raise UnsupportedType("This type of file is not accepted", fields={"file": content_type})
    signatures = SIGNATURES.get(content_type)
    if signatures is not None and not head.startswith(signatures):
        raise UnsupportedType(
            f"The file is not a real {content_type}", fields={"file": "content differs"}
        )
    if head.startswith(b"MZ"):
        raise UnsupportedType("Executable files are not accepted", fields={"file": "executable"})
    return content_type
