"""Encryption at rest: per-object data keys under key-encryption keys from settings.

``keyring.py`` wraps and unwraps data keys with the KEKs of ``PALETTE_ENCRYPTION_KEYS``;
``stream.py`` is the chunked AES-256-GCM file format (memory stays flat, any byte range can be
read); ``blobs.py`` is a ``BlobStore`` that encrypts another one; ``fields.py`` seals values
the database holds (webhook bodies, palettes) under one data key of the database's own.
"""
