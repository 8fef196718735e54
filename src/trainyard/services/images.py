"""Image checks shared by uploads and prediction: decode fully before accepting anything."""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidInput

if TYPE_CHECKING:
    from PIL import Image as PILImage

ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "GIF": "gif", "WEBP": "webp"}
# A stored picture's media type by its file ending (each format's type is image/<format>);
# uploads keep .jpeg as well as .jpg
MEDIA_TYPE_BY_SUFFIX = {f".{suffix}": f"image/{fmt.lower()}" for fmt, suffix in ALLOWED_FORMATS.items()}
MEDIA_TYPE_BY_SUFFIX[".jpeg"] = "image/jpeg"
DATA_URL_PREFIX = re.compile(r"^data:image/[a-zA-Z0-9.+-]+;base64,")


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str
    extension: str
    width: int
    height: int


def open_checked_image(data: bytes, name: str, max_pixels: int) -> PILImage.Image:
    """Decode the whole image and return it; InvalidInput names `name` when it is not an
    acceptable image (format whitelist, pixel cap, truncation, decompression bombs)."""
    from PIL import Image as PILImage  # here, not at import: see prediction.py
    from PIL import UnidentifiedImageError

    if not data:
        raise InvalidInput(f"{name}: file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            image = PILImage.open(io.BytesIO(data))
            fmt = image.format or ""
            width, height = image.size
            if fmt not in ALLOWED_FORMATS:
                raise InvalidInput(
                    f"{name}: image format {fmt or 'unknown'} is not accepted"
                    f" (accepted: {', '.join(sorted(ALLOWED_FORMATS))})"
                )
            if width * height > max_pixels:
                raise InvalidInput(f"{name}: image is {width}x{height}, over the {max_pixels}-pixel limit")
            image.load()  # decodes every byte: truncated files fail here
    except InvalidInput:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        # Pillow refuses these before our pixel cap is reached: say what it is, not "unreadable"
        raise InvalidInput(
            f"{name}: image is a decompression bomb (over {max_pixels} pixels once decoded)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidInput(f"{name}: not a readable image ({exc.__class__.__name__})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"{name}: corrupt or truncated image ({exc})") from exc
    return image


def check_image(data: bytes, name: str, max_pixels: int) -> CheckedImage:
    """The checks of open_checked_image, keeping the original bytes for storage."""
    image = open_checked_image(data, name, max_pixels)
    fmt = image.format or ""
    return CheckedImage(data, fmt, ALLOWED_FORMATS[fmt], image.width, image.height)


def decode_base64_image(text: object, field: str = "image_b64") -> bytes:
    """Strict base64 (an optional data: URL prefix is allowed, as browsers send it)."""
    if not isinstance(text, str) or not text:
        raise InvalidInput(f"{field}: expected a non-empty base64 string")
    payload = DATA_URL_PREFIX.sub("", text.strip(), count=1)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{field}: invalid base64 ({exc})") from exc
