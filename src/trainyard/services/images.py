"""Image checks shared by uploads and prediction: decode fully before accepting anything."""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

from ..errors import InvalidInput

ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "GIF": "gif", "WEBP": "webp"}
DATA_URL_PREFIX = re.compile(r"^data:image/[a-zA-Z0-9.+-]+;base64,")


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str
    extension: str
    width: int
    height: int


def check_image(data: bytes, name: str, max_pixels: int) -> CheckedImage:
    """Decode the whole image; InvalidInput names `name` when it is not an acceptable image."""
    from PIL import Image as PILImage  # here, not at import: see prediction.py
    from PIL import UnidentifiedImageError

    if not data:
        raise InvalidInput(f"{name}: file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as probe:
                fmt = probe.format or ""
                width, height = probe.size
                if fmt not in ALLOWED_FORMATS:
                    raise InvalidInput(
                        f"{name}: image format {fmt or 'unknown'} is not accepted"
                        f" (accepted: {', '.join(sorted(ALLOWED_FORMATS))})"
                    )
                if width * height > max_pixels:
                    raise InvalidInput(
                        f"{name}: image is {width}x{height}, over the {max_pixels}-pixel limit"
                    )
                probe.load()  # decodes every byte: truncated files fail here
    except InvalidInput:
        raise
    except (
        UnidentifiedImageError,
        PILImage.DecompressionBombError,
        PILImage.DecompressionBombWarning,
    ) as exc:
        raise InvalidInput(f"{name}: not a readable image ({exc.__class__.__name__})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"{name}: corrupt or truncated image ({exc})") from exc
    return CheckedImage(data, fmt, ALLOWED_FORMATS[fmt], width, height)


def decode_base64_image(text: object, field: str = "image_b64") -> bytes:
    """Strict base64 (an optional data: URL prefix is allowed, as browsers send it)."""
    if not isinstance(text, str) or not text:
        raise InvalidInput(f"{field}: expected a non-empty base64 string")
    payload = DATA_URL_PREFIX.sub("", text.strip(), count=1)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{field}: invalid base64 ({exc})") from exc
