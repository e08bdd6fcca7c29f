from .manifest import ManifestError, read_manifest  # noqa: F401
