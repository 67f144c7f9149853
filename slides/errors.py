"""Errors raised for bad slide input, each naming the file and the fix."""


class SlideError(ValueError):
    """Base class: a slide or image cannot be used as given."""


class SlideNotFoundError(SlideError, FileNotFoundError):
    """The slide path does not exist."""


class UnsupportedFormatError(SlideError):
    """The file is not a format OpenSlide or the image readers understand."""


class CorruptSlideError(SlideError):
    """The file has a known format but cannot be decoded (corrupt or truncated)."""


class MissingMPPError(SlideError):
    """The slide carries no microns-per-pixel and no override was given."""


class ImageReadError(CorruptSlideError):
    """A tile image in a folder cannot be read or converted to RGB."""
