"""The distributed backend's blob half: an S3-compatible bucket (``PALETTE_BLOBS=s3://...``)."""
